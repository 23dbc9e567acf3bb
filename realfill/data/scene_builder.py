"""Making a scene folder from photos: the target's missing region as an outpainting border, a
box, a mask image or the target's own transparency, and a preview to check it by eye.

Pure functions on PIL images, and `write_scene`, which writes the layout
`realfill.data.scene.load_scene` reads; `python -m realfill.scene` is the command.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from realfill.data.scene import (
    MASK_THRESHOLD,
    REFERENCE_EXTENSIONS,
    check_aspect_ratio,
    check_mask,
    load_image,
    load_scene,
)
from realfill.errors import SceneError
from realfill.io import save_image, staged_directory

SCENE_ENTRIES = ("ref/*", "target/*", "preview.png")
"""What `write_scene` writes into a scene folder: all it may replace there."""

HOLE_COLOUR = (255, 0, 255)
"""How `preview_image` paints the missing region: magenta, rare in photos."""

PREVIEW_HEIGHT = 256
"""Height of each image in the preview strip, in pixels."""

NUMBER = r"\d+(?:\.\d*)?"
"""A non-negative decimal number, as the specs below spell one."""


@dataclass(frozen=True)
class Margins:
    """Pixels added on each side of the target by outpainting."""

    left: int
    top: int
    right: int
    bottom: int


def centred(extra_width: int, extra_height: int) -> Margins:
    """Margins that grow a canvas by these amounts, split evenly between opposite sides."""
    return Margins(
        left=extra_width // 2,
        top=extra_height // 2,
        right=extra_width - extra_width // 2,
        bottom=extra_height - extra_height // 2,
    )


def parse_outpaint(spec: str, width: int, height: int) -> Margins:
    """The border an `--outpaint` spec adds to a `width` x `height` target: a factor ("1.5":
    both sides 1.5 times longer, centred), an aspect ratio ("16:9": the shorter way grown,
    centred, until the canvas has it) or pixels per side ("L,T,R,B", e.g. "0,0,128,0")."""
    text = spec.strip()
    if re.fullmatch(r"\d+,\d+,\d+,\d+", text):
        margins = Margins(*(int(value) for value in text.split(",")))
        if margins == Margins(0, 0, 0, 0):
            raise SceneError(f"--outpaint {spec}: adds no pixel; give at least one side > 0")
        return margins
    if match := re.fullmatch(rf"({NUMBER}):({NUMBER})", text):
        across, down = float(match[1]), float(match[2])
        if across <= 0 or down <= 0:
            raise SceneError(f"--outpaint {spec}: both sides of an aspect ratio must be > 0")
        new_width = max(width, round(height * across / down))
        new_height = max(height, round(width * down / across))
        if (new_width, new_height) == (width, height):
            raise SceneError(f"--outpaint {spec}: the target ({width}x{height}) has it already")
        return centred(new_width - width, new_height - height)
    if re.fullmatch(NUMBER, text):
        factor = float(text)
        if factor <= 1.0:
            raise SceneError(f"--outpaint {spec}: a factor must be above 1 (the canvas grows)")
        return centred(round(width * factor) - width, round(height * factor) - height)
    raise SceneError(
        f"--outpaint {spec}: expected a factor (1.5), an aspect ratio (16:9) or pixels per "
        "side (L,T,R,B)"
    )


def outpaint_canvas(target: Image.Image, margins: Margins) -> tuple[Image.Image, Image.Image]:
    """The target on a canvas grown by `margins` (the new border black) and its mask (255 on
    the border, which is what to fill; 0 on the photo)."""
    width = target.width + margins.left + margins.right
    height = target.height + margins.top + margins.bottom
    canvas = Image.new("RGB", (width, height))
    canvas.paste(target, (margins.left, margins.top))
    mask = Image.new("L", (width, height), 255)
    mask.paste(
        0, (margins.left, margins.top, margins.left + target.width, margins.top + target.height)
    )
    return canvas, mask


def parse_box(spec: str, width: int, height: int) -> tuple[int, int, int, int]:
    """The pixel box (left, top, right, bottom; right and bottom exclusive) of a `--box` spec
    "L,T,R,B": in pixels, or in fractions of the width and height when every value is at
    most 1 (e.g. "0.25,0.25,0.75,0.75", the centre quarter)."""
    values = spec.split(",")
    if len(values) != 4 or not all(re.fullmatch(NUMBER, value.strip()) for value in values):
        raise SceneError(f"--box {spec}: expected four numbers L,T,R,B (pixels or fractions)")
    numbers = [float(value) for value in values]
    if all(number <= 1.0 for number in numbers):
        numbers = [number * side for number, side in zip(numbers, (width, height) * 2, strict=True)]
    left, top, right, bottom = (round(number) for number in numbers)
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise SceneError(
            f"--box {spec}: not a box inside the {width}x{height} target (need L < R <= "
            f"{width}, T < B <= {height})"
        )
    return left, top, right, bottom


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    """A mask of `size` that is 255 (to fill) inside `box` and 0 elsewhere."""
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def alpha_mask(path: Path) -> Image.Image:
    """The mask an image's own transparency gives (transparent = missing), or a `SceneError`
    when it has none. EXIF orientation is applied, as to the image itself."""
    with Image.open(path) as image:
        image.load()
        oriented = ImageOps.exif_transpose(image)
    if "A" not in oriented.getbands() and "transparency" not in oriented.info:
        raise SceneError(
            f"{path}: has no transparency; give --outpaint, --box or --mask to say what is missing"
        )
    alpha = oriented.convert("RGBA").getchannel("A")
    return alpha.point(lambda value: 0 if value > MASK_THRESHOLD else 255)


def preview_image(
    target: Image.Image, mask: Image.Image, references: Sequence[Image.Image]
) -> Image.Image:
    """The target with its missing region painted magenta, then the references, side by side
    at one height: what the scene asks for, to check by eye before a fit."""
    painted = target.copy()
    painted.paste(HOLE_COLOUR, mask=mask)
    shown = [painted, *references]
    widths = [max(1, round(image.width * PREVIEW_HEIGHT / image.height)) for image in shown]
    strip = Image.new("RGB", (sum(widths), PREVIEW_HEIGHT), (255, 255, 255))
    left = 0
    for image, width in zip(shown, widths, strict=True):
        strip.paste(image.resize((width, PREVIEW_HEIGHT), Image.Resampling.LANCZOS), (left, 0))
        left += width
    return strip


def reference_names(paths: Sequence[Path]) -> list[str]:
    """File names for the references in `ref/`, numbered so they keep the order given (and
    two photos of one name from different folders stay two files)."""
    return [f"{index:02d}_{Path(path).name}" for index, path in enumerate(paths)]


def write_scene(
    out: Path,
    target: Image.Image,
    mask: Image.Image,
    reference_paths: Sequence[Path],
    target_source: Path,
    mask_source: Path,
) -> Path:
    """Write a scene folder at `out`: the references copied byte for byte (or as PNG when
    their format is not one a scene reads), `target/target.png`, `target/mask.png` and
    `preview.png`. Checked as `load_scene` checks a scene, before anything is written and
    naming the files the target and mask came from; `out` is replaced only once complete,
    and only if it holds an earlier scene."""
    check_mask(mask, mask_source, target, target_source)
    check_aspect_ratio(target, target_source)
    references = [load_image(path) for path in reference_paths]
    for reference, path in zip(references, reference_paths, strict=True):
        check_aspect_ratio(reference, path)
    with staged_directory(out, SCENE_ENTRIES) as staging:
        (staging / "ref").mkdir()
        (staging / "target").mkdir()
        for path, name, image in zip(
            reference_paths, reference_names(reference_paths), references, strict=True
        ):
            if Path(path).suffix.lower() in REFERENCE_EXTENSIONS:
                shutil.copyfile(path, staging / "ref" / name)
            else:
                save_image(image, staging / "ref" / f"{Path(name).stem}.png")
        save_image(target, staging / "target" / "target.png")
        save_image(mask, staging / "target" / "mask.png")
        save_image(preview_image(target, mask, references), staging / "preview.png")
        load_scene(staging)
    return Path(out)
