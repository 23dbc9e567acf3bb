"""One image that shows many: a captioned grid of thumbnails for logs and reports."""

import math
from collections.abc import Collection, Sequence

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
"""Sheet colour behind and between the tiles."""
TEXT_COLOUR = (0, 0, 0)
"""Caption colour."""
HIGHLIGHT_COLOUR = (0, 170, 0)
"""The frame of a highlighted tile (a kept candidate): green, drawn in the gap around it."""
HIGHLIGHT_WIDTH = 2
"""The frame's width in pixels, at most half the gap so that neighbouring frames never meet."""
ELLIPSIS = "..."
"""Appended to a caption cut short to fit its tile (ASCII: the default font draws it)."""


def grid_shape(count: int, columns: int | None = None) -> tuple[int, int]:
    """(columns, rows) for ``count`` tiles; columns default to ceil(sqrt(count)), a near square."""
    if count < 1:
        raise ValueError(f"need at least one image, got {count}")
    if columns is None:
        columns = math.ceil(math.sqrt(count))
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    columns = min(columns, count)
    return columns, math.ceil(count / columns)


THUMBNAIL_REDUCING_GAP = 3.0
"""Pillow's `reducing_gap` for thumbnails: a large image is first shrunk by a whole factor
(box filter) to within this factor of the thumbnail, then resampled; Pillow calls the result
practically indistinguishable from resampling the full image, at a fraction of the work (a
12-megapixel photo's tile)."""


def thumbnail(image: Image.Image, width: int) -> Image.Image:
    """``image`` as RGB scaled to ``width`` pixels wide, aspect ratio kept (height >= 1)."""
    height = max(1, round(image.height * width / image.width))
    return image.convert("RGB").resize(
        (width, height), Image.Resampling.BICUBIC, reducing_gap=THUMBNAIL_REDUCING_GAP
    )


def fit_caption(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    """``text`` on one line, cut and ended with an ellipsis if it is wider than ``width``."""
    text = " ".join(text.split())
    if draw.textlength(text, font=font) <= width:
        return text
    for end in range(len(text) - 1, -1, -1):
        candidate = text[:end].rstrip() + ELLIPSIS
        if draw.textlength(candidate, font=font) <= width:
            return candidate
    return ""


CAPTION_PROBE = "Ag|"
"""Text whose bounding box spans a line's full ascent and descent, to size caption strips."""


def caption_line(font: ImageFont.ImageFont) -> tuple[int, int]:
    """(top offset, height) of one line of ``font`` text, measured on ``CAPTION_PROBE``."""
    _, top, _, bottom = font.getbbox(CAPTION_PROBE)
    return int(top), int(bottom - top)


def contact_sheet(
    images: Sequence[Image.Image],
    captions: Sequence[str] | None = None,
    columns: int | None = None,
    tile_size: int = 256,
    gap: int = 4,
    highlighted: Collection[int] = (),
) -> Image.Image:
    """A white grid of thumbnails, each ``tile_size`` wide, with its caption drawn beneath;
    the tiles at the ``highlighted`` indices framed in green, in the gap (no pixel covered).

    Columns default to ceil(sqrt(n)) and never exceed n. Thumbnails keep their aspect ratio;
    every cell is as tall as the tallest thumbnail plus a caption strip (none when ``captions``
    is None), and cells are ``gap`` pixels apart and from the sheet's edge. Captions too wide
    for a tile are cut with an ellipsis. The sheet is ``columns * tile_size + (columns + 1) *
    gap`` pixels wide.
    """
    if len(images) == 0:
        raise ValueError("contact_sheet needs at least one image")
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"got {len(captions)} captions for {len(images)} images")
    if tile_size < 1 or gap < 0:
        raise ValueError(f"tile_size must be >= 1 and gap >= 0, got {tile_size} and {gap}")
    n_columns, n_rows = grid_shape(len(images), columns)
    thumbs = [thumbnail(image, tile_size) for image in images]
    font = ImageFont.load_default()
    line_top, line_height = caption_line(font)
    strip = 0 if captions is None else line_height + 2 * gap
    cell_height = max(thumb.height for thumb in thumbs) + strip
    sheet = Image.new(
        "RGB",
        (n_columns * tile_size + (n_columns + 1) * gap, n_rows * cell_height + (n_rows + 1) * gap),
        BACKGROUND,
    )
    draw = ImageDraw.Draw(sheet)
    for index, thumb in enumerate(thumbs):
        row, column = divmod(index, n_columns)
        x = gap + column * (tile_size + gap)
        y = gap + row * (cell_height + gap)
        sheet.paste(thumb, (x, y))
        if index in highlighted:
            width = min(HIGHLIGHT_WIDTH, gap // 2)
            box = (x - width, y - width, x + thumb.width + width - 1, y + thumb.height + width - 1)
            draw.rectangle(box, outline=HIGHLIGHT_COLOUR, width=width)
        if captions is not None:
            text = fit_caption(draw, captions[index], font, tile_size)
            text_y = y + cell_height - strip + gap - line_top
            draw.text((x, text_y), text, fill=TEXT_COLOUR, font=font)
    return sheet


def stacked(sheets: Sequence[Image.Image]) -> Image.Image:
    """Sheets one above the other, left-aligned on the sheet colour (each brings its own
    margins, so that the parts stand apart)."""
    if len(sheets) == 0:
        raise ValueError("stacked needs at least one sheet")
    width, height = max(s.width for s in sheets), sum(s.height for s in sheets)
    out = Image.new("RGB", (width, height), BACKGROUND)
    top = 0
    for sheet in sheets:
        out.paste(sheet, (0, top))
        top += sheet.height
    return out
