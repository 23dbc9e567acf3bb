"""Build examples/motorcycle: a RealFill scene from the Middlebury 2014 motorcycle stereo pair.

The right view is the reference; the left view, with a rectangular hole over the motorcycle's
fuel tank and engine (13% of the image), is the target; the unmasked left view is the ground
truth. The pair comes from scikit-image's bundled data (``skimage.data.stereo_motorcycle``);
scikit-image is a dev dependency (``pip install -e ".[dev]"``).

``--benchmark DIR`` builds an evaluation benchmark instead: ``DIR/motorcycle_inpaint`` (the
scene above) and ``DIR/motorcycle_outpaint`` (only a central crop of the left view is known,
the border is to be filled), both with ``target/gt.png`` and a ``prompt.txt`` for the
prompt-only baseline. ``--held-out DIR`` builds four more, with holes and borders fixed before
any setting was tuned on them (``HELD_OUT``)::

    python examples/make_motorcycle.py --benchmark runs/motorcycle_benchmark
    python examples/make_motorcycle.py --held-out runs/motorcycle_held_out
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

HOLE = (0.40, 0.30, 0.70, 0.74)
"""The hole as fractions of the image (left, top, right, bottom): tank and engine."""
KNOWN_CROP = (0.16, 0.14, 0.84, 0.86)
"""Outpainting: the known central crop (left, top, right, bottom); the border is missing."""
HELD_OUT = {
    "motorcycle_rear_wheel": ("inpaint", (0.10, 0.52, 0.40, 0.92)),
    "motorcycle_headlight": ("inpaint", (0.62, 0.14, 0.84, 0.46)),
    "motorcycle_small_hole": ("inpaint", (0.24, 0.30, 0.38, 0.48)),
    "motorcycle_outpaint_right": ("outpaint", (0.0, 0.0, 0.66, 1.0)),
}
"""Scenes for evaluation on settings never tuned on them: (kind, box), the box being the hole
(inpaint) or the known region (outpaint), as fractions (left, top, right, bottom). The right
border is what the reference, the right view, shows beyond the left view."""
PROMPT = "a photo of a red motorcycle parked in a garage in front of shelves"
"""A hand-written description of the scene, for the prompt-only baseline."""


def stereo_pair(short_side: int) -> tuple[Image.Image, Image.Image]:
    """The (left, right) views of scikit-image's Middlebury motorcycle, downscaled."""
    from skimage.data import stereo_motorcycle

    left, right, _ = stereo_motorcycle()
    return downscale(left, short_side), downscale(right, short_side)


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


def write_scene(
    out_dir: Path, gt: Image.Image, ref: Image.Image, mask: Image.Image, jpeg_quality: int
) -> None:
    """Write ref/right.jpg, target/target.png, target/mask.png and target/gt.png under out_dir."""
    (out_dir / "ref").mkdir(parents=True, exist_ok=True)
    (out_dir / "target").mkdir(parents=True, exist_ok=True)
    ref.save(out_dir / "ref" / "right.jpg", quality=jpeg_quality)
    paint_hole(gt, mask).save(out_dir / "target" / "target.png", optimize=True)
    mask.save(out_dir / "target" / "mask.png", optimize=True)
    gt.save(out_dir / "target" / "gt.png", optimize=True)


def build(out_dir: Path, short_side: int, jpeg_quality: int) -> None:
    """The inpainting scene (a hole over the tank and engine) under out_dir."""
    gt, ref = stereo_pair(short_side)
    write_scene(out_dir, gt, ref, hole_mask(gt.size, HOLE), jpeg_quality)


def region_mask(size: tuple[int, int], kind: str, box: tuple[float, ...]) -> Image.Image:
    """The mask of an inpainting hole `box`, or of all but the known region `box`."""
    mask = hole_mask(size, box)
    return mask if kind == "inpaint" else Image.eval(mask, lambda value: 255 - value)


def crop_box(size: tuple[int, int], box: tuple[float, float, float, float]) -> tuple[int, ...]:
    """The pixel box (left, top, right, bottom) of the fractional ``box`` of ``size``."""
    width, height = size
    left, top, right, bottom = box
    return round(left * width), round(top * height), round(right * width), round(bottom * height)


def build_benchmark(
    out_dir: Path,
    short_side: int,
    jpeg_quality: int,
    regions: dict[str, tuple[str, tuple[float, ...]]] | None = None,
    crop: tuple[float, float, float, float] | None = None,
) -> list[Path]:
    """Scenes of the pair, each with its ground truth and a prompt: one per entry of
    `regions` (name: (kind, box)), by default the inpainting and outpainting scenes. With
    `crop` (a fractional box), both views are cut to it first and the regions placed in it."""
    gt, ref = stereo_pair(short_side)
    if crop is not None:
        gt, ref = gt.crop(crop_box(gt.size, crop)), ref.crop(crop_box(ref.size, crop))
    regions = regions or {
        "motorcycle_inpaint": ("inpaint", HOLE),
        "motorcycle_outpaint": ("outpaint", KNOWN_CROP),
    }
    scenes = {name: region_mask(gt.size, *region) for name, region in regions.items()}
    for name, mask in scenes.items():
        write_scene(out_dir / name, gt, ref, mask, jpeg_quality)
        (out_dir / name / "prompt.txt").write_text(PROMPT + "\n")
    return [out_dir / name for name in scenes]


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
    parser.add_argument(
        "--benchmark",
        type=Path,
        default=None,
        help="build an inpainting and an outpainting benchmark scene under this folder instead",
    )
    parser.add_argument(
        "--held-out",
        type=Path,
        default=None,
        help="build the held-out evaluation scenes (HELD_OUT) under this folder instead",
    )
    args = parser.parse_args()
    if args.held_out is not None:
        for scene in build_benchmark(args.held_out, args.short_side, args.jpeg_quality, HELD_OUT):
            print(scene)
    elif args.benchmark is not None:
        for scene in build_benchmark(args.benchmark, args.short_side, args.jpeg_quality):
            print(scene)
    else:
        build(args.out, args.short_side, args.jpeg_quality)


if __name__ == "__main__":
    main()
