"""The benchmarks' square scene keeps the hole and samples 512x512 completions."""

from pathlib import Path

import numpy as np
import pytest

from realfill.data.scene import load_scene

EXAMPLE_SCENE = Path(__file__).resolve().parents[2] / "examples" / "motorcycle"


@pytest.fixture
def square(load_script):
    return load_script("square_scene")


def test_square_scene_is_square_keeps_the_whole_hole_and_the_references(tmp_path, square):
    source = load_scene(EXAMPLE_SCENE)
    copy = load_scene(square.square_scene(source.root, tmp_path / "square"))
    side = min(source.target.size)
    assert copy.target.size == copy.mask.size == copy.ground_truth.size == (side, side)
    assert (np.asarray(copy.mask) > 0).sum() == (np.asarray(source.mask) > 0).sum()
    left, top, _, _ = square.hole_centred_square(np.asarray(source.mask) > 0)
    crop = np.asarray(source.target)[top : top + side, left : left + side]
    assert np.array_equal(np.asarray(copy.target), crop)
    assert len(copy.references) == len(source.references)
    assert all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(copy.references, source.references, strict=True)
    )


@pytest.mark.parametrize(
    ("hole", "box"),
    [
        ((slice(10, 20), slice(40, 50)), (30, 0, 60, 30)),  # centred on the hole
        ((slice(10, 20), slice(0, 5)), (0, 0, 30, 30)),  # clamped at the left edge
        ((slice(10, 20), slice(95, 100)), (70, 0, 100, 30)),  # clamped at the right edge
        (None, (35, 0, 65, 30)),  # no hole: the centre
    ],
)
def test_hole_centred_square_centres_on_the_hole_within_the_image(square, hole, box):
    mask = np.zeros((30, 100), bool)
    if hole is not None:
        mask[hole] = True
    assert square.hole_centred_square(mask) == box
