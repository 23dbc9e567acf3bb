"""A RealFill scene on disk: reference photos, one target photo and the mask of its missing part.

Layout::

    SCENE/ref/*.{png,jpg,jpeg,webp}   reference images (any case; sorted by name)
    SCENE/target/target.png           the image to complete
    SCENE/target/mask.png             white = missing (to fill), black = known
    SCENE/target/gt.png               optional ground truth, for evaluation only

Every problem with the input is reported as a one-line `SceneError` naming the offending path.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from realfill.errors import SceneError

REFERENCE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp"})
"""File suffixes (compared lower-case) that count as reference images in ``SCENE/ref/``."""

MASK_THRESHOLD = 127
"""A mask pixel whose luminance is above this (0..255) is missing (white); at or below, known."""

SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
"""Integer grayscale modes whose values span 0..65535 and are rescaled (not clipped) to 0..255."""

ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
"""Modes carrying an alpha channel, composited over black before dropping it."""

UINT16_TO_UINT8 = 65535 / 255
"""Divisor that maps the 16-bit range 0..65535 onto 0..255 (i.e. 257)."""

MAX_ASPECT_RATIO = 8.0
"""Longest side over shortest that a scene image may have. Images are trained on and sampled
with their shorter side at the model's resolution, so a 20000x20 target would be sampled at
64000x64 (hours, and memory no card has); 8:1 allows panoramas."""


@dataclass(frozen=True)
class Scene:
    """One scene, fully decoded and validated by `load_scene`."""

    root: Path
    """The scene folder."""
    references: list[Image.Image]
    """Reference images, RGB, in file-name order."""
    reference_paths: list[Path]
    """Paths of ``references``, same order."""
    target: Image.Image
    """The image to complete, RGB, EXIF orientation applied."""
    target_path: Path
    """Path of ``target``."""
    mask: Image.Image
    """Mode "L", values exactly 0 or 255; 255 = missing (to fill); same size as ``target``."""
    mask_path: Path
    """Path of ``mask``."""
    ground_truth: Image.Image | None
    """The true complete target (RGB, same size), if ``target/gt.png`` exists."""

    @property
    def name(self) -> str:
        """The scene's folder name, e.g. for run names and output files."""
        return self.root.name


def _one_line(text: str) -> str:
    """Collapse whitespace so a library's multi-line message fits a one-line error."""
    return " ".join(text.split())


def _open_oriented(path: Path) -> Image.Image:
    """Decode every pixel of ``path`` (so truncation fails here) and apply its EXIF orientation."""
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)
    except FileNotFoundError as error:
        raise SceneError(f"{path}: file not found") from error
    except UnidentifiedImageError as error:
        reason = "unknown or unsupported format"
        raise SceneError(f"{path}: not a readable image ({reason})") from error
    except Exception as error:  # PIL raises many types: OSError, SyntaxError, struct.error, ...
        reason = _one_line(str(error)) or type(error).__name__
        raise SceneError(f"{path}: not a readable image ({reason})") from error


def _sixteen_bit_to_l(image: Image.Image) -> Image.Image:
    """Rescale a 16-bit (or 32-bit integer) grayscale image to 8 bits; PIL would clip to white."""
    values = np.asarray(image).astype(np.float64) / UINT16_TO_UINT8
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


def _has_alpha(image: Image.Image) -> bool:
    """Whether ``image`` has transparency: an alpha channel or a palette transparency entry."""
    return image.mode in ALPHA_MODES or (
        image.mode in {"P", "L", "RGB"} and "transparency" in image.info
    )


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: transparency composited over black, 16-bit gray rescaled."""
    if image.mode in SIXTEEN_BIT_MODES:
        image = _sixteen_bit_to_l(image)
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: Path) -> Image.Image:
    """Load an image as RGB with EXIF orientation applied, or raise a one-line `SceneError`."""
    image = _open_oriented(Path(path))
    try:
        return to_rgb(image)
    except (OSError, ValueError) as error:
        raise SceneError(
            f"{path}: cannot convert image mode {image.mode} to RGB ({_one_line(str(error))})"
        ) from error


def load_mask(path: Path) -> Image.Image:
    """Load a mask as mode "L" with values 0 (known) or 255 (missing), thresholding luminance."""
    rgb = load_image(path)
    return rgb.convert("L").point(lambda value: 255 if value > MASK_THRESHOLD else 0)


def _size(image: Image.Image) -> str:
    """Format an image size as ``WIDTHxHEIGHT`` for error messages."""
    return f"{image.width}x{image.height}"


def _reference_paths(ref_dir: Path) -> list[Path]:
    """Reference image files in ``ref_dir`` sorted by name; hidden files (``._x.jpg``) skipped.
    An entry named as an image that is no file (a broken link, a folder) is an error, not
    silently one reference fewer."""
    paths = sorted(
        (
            path
            for path in ref_dir.iterdir()
            if not path.name.startswith(".") and path.suffix.lower() in REFERENCE_EXTENSIONS
        ),
        key=lambda path: path.name,
    )
    for path in paths:
        if not path.is_file():
            raise SceneError(f"{path}: not an image file ({entry_kind(path)})")
    return paths


def entry_kind(path: Path) -> str:
    """What a path that is not a regular file is, for an error message."""
    if path.is_dir():
        return "a folder"
    if not path.exists():
        return "a broken link" if path.is_symlink() else "missing"
    if path.is_fifo():
        return "a FIFO, which would block the reader"
    if path.is_socket():
        return "a socket"
    return "a device" if path.is_block_device() or path.is_char_device() else "not a file"


def _require_file(path: Path, what: str) -> None:
    """Raise a `SceneError` unless ``path`` is a regular file (a FIFO would block the read)."""
    if not path.is_file():
        if not path.exists() and not path.is_symlink():
            raise SceneError(f"{path}: missing {what}")
        raise SceneError(f"{path}: the {what} is not a regular file ({entry_kind(path)})")


def check_aspect_ratio(image: Image.Image, path: Path) -> None:
    """Refuse an image too long and thin to be trained on or sampled (`MAX_ASPECT_RATIO`)."""
    ratio = max(image.size) / min(image.size)
    if ratio > MAX_ASPECT_RATIO:
        raise SceneError(
            f"{path}: {_size(image)} has an aspect ratio of {ratio:.1f}:1, more than the "
            f"{MAX_ASPECT_RATIO:g}:1 realfill trains and samples at; crop it"
        )


def check_mask(mask: Image.Image, mask_path: Path, target: Image.Image, target_path: Path) -> None:
    """Reject a mask of the wrong size, one with nothing to fill, and one that hides everything."""
    if mask.size != target.size:
        raise SceneError(
            f"{mask_path}: mask is {_size(mask)} (WxH) "
            f"but the target {target_path} is {_size(target)}"
        )
    low, high = mask.getextrema()
    if high == 0:
        raise SceneError(f"{mask_path}: mask has nothing to fill (no white pixel; white = missing)")
    if low == 255:
        raise SceneError(f"{mask_path}: mask covers the whole target (no black, i.e. known, pixel)")


def load_scene(scene_dir: str | Path, max_references: int = 5) -> Scene:
    """Load and validate a scene folder; more than ``max_references`` references only warns."""
    root = Path(scene_dir)
    if not root.exists():
        raise SceneError(f"{root}: scene folder does not exist")
    if not root.is_dir():
        raise SceneError(f"{root}: scene path is not a folder")
    ref_dir = root / "ref"
    if not ref_dir.is_dir():
        raise SceneError(f"{ref_dir}: missing reference folder (put the reference images in ref/)")
    reference_paths = _reference_paths(ref_dir)
    if not reference_paths:
        suffixes = "/".join(sorted(REFERENCE_EXTENSIONS))
        raise SceneError(f"{ref_dir}: no reference images (expected {suffixes} files)")
    if len(reference_paths) > max_references:
        warnings.warn(
            f"{ref_dir}: {len(reference_paths)} reference images, more than {max_references} "
            "(the paper uses at most 5); using all of them",
            stacklevel=2,
        )
    target_path = root / "target" / "target.png"
    mask_path = root / "target" / "mask.png"
    _require_file(target_path, "target image")
    _require_file(mask_path, "mask image (white = missing)")
    references = [load_image(path) for path in reference_paths]
    target = load_image(target_path)
    for image, path in zip([*references, target], [*reference_paths, target_path], strict=True):
        check_aspect_ratio(image, path)
    mask = load_mask(mask_path)
    check_mask(mask, mask_path, target, target_path)
    gt_path = root / "target" / "gt.png"
    has_ground_truth = gt_path.exists() or gt_path.is_symlink()
    if has_ground_truth:
        _require_file(gt_path, "ground truth")
    ground_truth = load_image(gt_path) if has_ground_truth else None
    if ground_truth is not None and ground_truth.size != target.size:
        raise SceneError(
            f"{gt_path}: ground truth is {_size(ground_truth)} (WxH) "
            f"but the target {target_path} is {_size(target)}"
        )
    return Scene(
        root=root,
        references=references,
        reference_paths=reference_paths,
        target=target,
        target_path=target_path,
        mask=mask,
        mask_path=mask_path,
        ground_truth=ground_truth,
    )
