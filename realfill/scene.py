"""`python -m realfill.scene --target PHOTO --refs PHOTO... --out SCENE`: a scene from photos.

What is missing from the target comes from one of:

- `--outpaint 1.5` (a factor), `--outpaint 16:9` (an aspect ratio) or `--outpaint 0,0,128,0`
  (pixels per side, L,T,R,B): the canvas grows and the new border is what to fill;
- `--box L,T,R,B`: a hole, in pixels, or in fractions of the size when every value is <= 1;
- `--mask IMAGE`: white = missing, the target's size;
- none of these: the target's own transparency (transparent = missing).

It writes the layout `realfill.fit` reads (`ref/`, `target/target.png`, `target/mask.png`)
and `preview.png` (the target with the missing region in magenta, the references beside it),
checked as a fit checks a scene. Bad input is one line and exit code 2.
"""

from __future__ import annotations

from pathlib import Path

from jsonargparse import ArgumentParser

from realfill.cli import exit_on_user_error
from realfill.data.scene import load_image, load_mask
from realfill.data.scene_builder import (
    alpha_mask,
    box_mask,
    outpaint_canvas,
    parse_box,
    parse_outpaint,
    write_scene,
)
from realfill.errors import ConfigError


def build_parser() -> ArgumentParser:
    """The command line of `python -m realfill.scene`."""
    parser = ArgumentParser(prog="python -m realfill.scene", description=__doc__)
    parser.add_argument("--target", type=Path, required=True, help="the photo to complete")
    parser.add_argument(
        "--refs", type=Path, nargs="+", required=True, help="reference photos (1 to 5)"
    )
    parser.add_argument("--out", type=Path, required=True, help="scene folder to write")
    parser.add_argument(
        "--outpaint", type=str | None, default=None, help="factor, W:H or L,T,R,B pixels"
    )
    parser.add_argument("--box", type=str | None, default=None, help="hole L,T,R,B")
    parser.add_argument(
        "--mask", type=Path | None, default=None, help="mask image, white = missing"
    )
    return parser


def make_scene(
    target_path: Path,
    reference_paths: list[Path],
    out: Path,
    outpaint: str | None = None,
    box: str | None = None,
    mask_path: Path | None = None,
) -> Path:
    """Make the scene folder `out` from photos (see the module's docstring for the ways to
    say what is missing); return its path."""
    given = [
        name
        for name, value in (("--outpaint", outpaint), ("--box", box), ("--mask", mask_path))
        if value is not None
    ]
    if len(given) > 1:
        raise ConfigError(
            f"{' and '.join(given)}: give one way to say what is missing, not several"
        )
    target = load_image(target_path)
    mask_source = target_path
    if outpaint is not None:
        target, mask = outpaint_canvas(target, parse_outpaint(outpaint, *target.size))
    elif box is not None:
        mask = box_mask(target.size, parse_box(box, *target.size))
    elif mask_path is not None:
        mask, mask_source = load_mask(mask_path), mask_path
    else:
        mask = alpha_mask(target_path)
    return write_scene(out, target, mask, reference_paths, target_path, mask_source)


def main(args: list[str] | None = None) -> Path:
    """Parse the command line and make the scene; bad input ends in one line, not a
    traceback."""
    parser = build_parser()
    with exit_on_user_error():
        config = parser.parse_args(args)
        scene = make_scene(
            config.target, config.refs, config.out, config.outpaint, config.box, config.mask
        )
        print(f"Scene: {scene} (check {scene / 'preview.png'}); fit it with")
        print(f"  python -m realfill.fit --config configs/realfill.yaml --data.scene_dir={scene}")
        return scene


if __name__ == "__main__":
    main()
