"""Build examples/motorcycle: a RealFill scene from the Middlebury 2014 motorcycle stereo pair.

The right view is the reference; the left view, with a rectangular hole over the motorcycle's
fuel tank and engine (13% of the image), is the target; the unmasked left view is the ground
truth. The pair comes from scikit-image's bundled data (``skimage.data.stereo_motorcycle``).
scikit-image is NOT a project dependency: run this with it installed separately, e.g.
``pip install --target /tmp/skimage scikit-image`` then
``PYTHONPATH=/tmp/skimage python examples/make_motorcycle.py``.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.data import stereo_motorcycle

HOLE = (0.40, 0.30, 0.70, 0.74)
"""The hole as fractions of the image (left, top, right, bottom): tank and engine."""


def downscale(image: np.ndarray, short_side: int) -> Image.Image:
    """An RGB array as a PIL image whose shorter side is ``short_side`` (never upscaled)."""
    pil = Image.fromarray(image).convert("RGB")
    scale = min(1.0, short_side / min(pil.size))
    size = (round(pil.width * scale), round(pil.height * scale))
    return pil if size == pil.size else pil.resize(size, Image.Resampling.LANCZOS)


def hole_mask(size: tuple[int, int], hole: tuple[float, float, float, float]) -> Image.Image:
    """A mode-L mask of ``size`` (width, height), 255 inside the fractional box ``hole``."""
    width, height = size
    left, top, right, bottom = hole
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[
        round(top * height) : round(bottom * height), round(left * width) : round(right * width)
    ] = 255
    return Image.fromarray(mask)


def paint_hole(image: Image.Image, mask: Image.Image) -> Image.Image:
    """``image`` with the masked pixels painted white, as a target's unknown region."""
    white = Image.new("RGB", image.size, (255, 255, 255))
    return Image.composite(white, image, mask)


def build(out_dir: Path, short_side: int, jpeg_quality: int) -> None:
    """Write ref/right.jpg, target/target.png, target/mask.png and target/gt.png under out_dir."""
    left, right, _ = stereo_motorcycle()
    gt, ref = downscale(left, short_side), downscale(right, short_side)
    mask = hole_mask(gt.size, HOLE)
    (out_dir / "ref").mkdir(parents=True, exist_ok=True)
    (out_dir / "target").mkdir(parents=True, exist_ok=True)
    ref.save(out_dir / "ref" / "right.jpg", quality=jpeg_quality)
    paint_hole(gt, mask).save(out_dir / "target" / "target.png", optimize=True)
    mask.save(out_dir / "target" / "mask.png", optimize=True)
    gt.save(out_dir / "target" / "gt.png", optimize=True)


def main() -> None:
    """Parse the command line and build the scene."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "motorcycle")
    parser.add_argument(
        "--short-side",
        type=int,
        default=224,
        help="shorter side in pixels; 224 keeps the scene near 300 KB (the PNGs dominate)",
    )
    parser.add_argument("--jpeg-quality", type=int, default=90, help="reference JPEG quality")
    args = parser.parse_args()
    build(args.out, args.short_side, args.jpeg_quality)


if __name__ == "__main__":
    main()
