"""Contact sheets: grid geometry, thumbnails in place, captions drawn, bad input refused."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from realfill.selection.contact_sheet import (
    BACKGROUND,
    HIGHLIGHT_COLOUR,
    contact_sheet,
    fit_caption,
    grid_shape,
)

WHITE = (255, 255, 255)


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Image.Image:
    """A one-colour RGB image."""
    return Image.new("RGB", size, colour)


@pytest.mark.parametrize(
    ("count", "columns", "expected"),
    [(1, None, (1, 1)), (4, None, (2, 2)), (5, None, (3, 2)), (10, None, (4, 3)), (3, 5, (3, 1))],
)
def test_grid_shape(count, columns, expected):
    assert grid_shape(count, columns) == expected


@pytest.mark.parametrize("count", [1, 2, 5, 9])
def test_sheet_size_without_captions(count):
    tile, gap = 20, 3
    sheet = contact_sheet([solid((0, 0, 255))] * count, tile_size=tile, gap=gap)
    columns, rows = grid_shape(count)
    thumb_height = round(30 * tile / 40)  # aspect kept: 40x30 -> 20x15
    assert sheet.mode == "RGB"
    assert sheet.size == (
        columns * tile + (columns + 1) * gap,
        rows * thumb_height + (rows + 1) * gap,
    )


def test_thumbnails_keep_aspect_and_sit_in_their_cells():
    images = [solid((255, 0, 0), (40, 20)), solid((0, 255, 0), (40, 40)), solid((0, 0, 255))]
    tile, gap = 16, 2
    sheet = np.asarray(contact_sheet(images, columns=2, tile_size=tile, gap=gap))
    cell_height = 16  # the tallest thumbnail, 40x40 -> 16x16
    assert sheet.shape == (2 * cell_height + 3 * gap, 2 * tile + 3 * gap, 3)
    # first tile: 16x8 red, white below it in the same cell
    assert np.all(sheet[gap : gap + 8, gap : gap + tile] == (255, 0, 0))
    assert np.all(sheet[gap + 8 : gap + cell_height, gap : gap + tile] == WHITE)
    # second tile: 16x16 green in column 1
    x1 = 2 * gap + tile
    assert np.all(sheet[gap : gap + 16, x1 : x1 + tile] == (0, 255, 0))
    # third tile starts the second row; the last cell stays background
    y1 = 2 * gap + cell_height
    assert np.all(sheet[y1 : y1 + 12, gap : gap + tile] == (0, 0, 255))
    assert np.all(sheet[y1:, x1:] == WHITE)


def test_captions_add_a_strip_with_text_in_it():
    images = [solid((0, 0, 0))] * 3
    plain = contact_sheet(images, tile_size=64, gap=4)
    captioned = contact_sheet(images, captions=["a", "seed 1", "seed 2"], tile_size=64, gap=4)
    assert captioned.width == plain.width and captioned.height > plain.height
    strip = np.asarray(captioned)[4 + 48 : 4 + 48 + (captioned.height - plain.height), 4 : 4 + 64]
    assert np.any(strip != 255), "the caption's pixels are drawn under the first tile"


def test_long_captions_are_cut_to_the_tile_width():
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    font = ImageFont.load_default()
    text = fit_caption(draw, "a very long caption " * 10, font, 60)
    assert text.endswith("...") and draw.textlength(text, font=font) <= 60
    assert fit_caption(draw, "short", font, 60) == "short"


def test_output_is_deterministic():
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)) for _ in range(4)]
    captions = [f"seed {i}: 12 matches" for i in range(4)]
    first = contact_sheet(images, captions, tile_size=48)
    second = contact_sheet(images, captions, tile_size=48)
    assert first.tobytes() == second.tobytes()


def test_empty_input_is_rejected():
    with pytest.raises(ValueError, match="at least one image"):
        contact_sheet([])


def test_caption_count_must_match():
    with pytest.raises(ValueError, match="2 captions for 3 images"):
        contact_sheet([solid((0, 0, 0))] * 3, captions=["a", "b"])


def test_highlighted_tiles_are_framed_in_the_gap_and_their_pixels_kept():
    tiles = [Image.new("RGB", (32, 32), (200, 0, 0)) for _ in range(3)]
    sheet = contact_sheet(tiles, columns=3, tile_size=32, gap=4, highlighted={1})
    first_x, second_x = 4, 4 + 32 + 4
    assert sheet.getpixel((second_x - 1, 10)) == HIGHLIGHT_COLOUR  # left of the kept tile
    assert sheet.getpixel((second_x + 32, 10)) == HIGHLIGHT_COLOUR  # right of it
    assert sheet.getpixel((first_x - 1, 10)) == BACKGROUND  # not kept: no frame
    assert sheet.crop((second_x, 4, second_x + 32, 36)).getcolors() == [(32 * 32, (200, 0, 0))]
