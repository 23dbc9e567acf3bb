"""A square copy of a scene, so that the benchmarks sample the issue's unit of work.

The speed targets count sampling in 512x512 completions (about 0.80 TFLOP per UNet step),
and the paper's scenes are square. A wider target samples more: `examples/motorcycle`
(332x224) is completed at 760x512, 1.6 times the FLOPs per step. The benchmarks therefore
run on the target's largest square that keeps its hole in the middle, the references as
they are.
"""

from pathlib import Path

import numpy as np

from realfill.data.scene import load_scene
from realfill.io import save_image


def hole_centred_square(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of the largest square inside an image of this mask,
    centred on its hole as far as the image edges allow."""
    height, width = mask.shape
    side = min(width, height)
    rows, cols = np.nonzero(mask)
    centre_x = (cols.min() + cols.max() + 1) / 2 if cols.size else width / 2
    centre_y = (rows.min() + rows.max() + 1) / 2 if rows.size else height / 2
    left = int(min(max(round(centre_x - side / 2), 0), width - side))
    top = int(min(max(round(centre_y - side / 2), 0), height - side))
    return left, top, left + side, top + side


def square_scene(scene_dir: str | Path, out_dir: str | Path) -> Path:
    """Write a copy of the scene at `scene_dir` to `out_dir` whose target, mask and ground
    truth are cropped to `hole_centred_square`; return `out_dir`."""
    scene = load_scene(Path(scene_dir))
    out = Path(out_dir)
    box = hole_centred_square(np.asarray(scene.mask) > 0)
    save_image(scene.target.crop(box), out / "target" / "target.png")
    save_image(scene.mask.crop(box), out / "target" / "mask.png")
    if scene.ground_truth is not None:
        save_image(scene.ground_truth.crop(box), out / "target" / "gt.png")
    for path, reference in zip(scene.reference_paths, scene.references, strict=True):
        save_image(reference, out / "ref" / f"{path.stem}.png")
    return out
