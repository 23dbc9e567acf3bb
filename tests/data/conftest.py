"""Fixtures for the data tests: tiny synthetic scenes written with PIL, and the shared real ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_SCENES = Path(__file__).resolve().parents[3] / "shared" / "scenes"
"""The real scenes beside the repository (/work/shared/scenes in the project's layout)."""

REAL_SCENE_NAMES = ("flowerwoman", "pumpkinlady2")
"""Real scenes that must load as they are: JPEG references, RGBA target and mask."""

TARGET_HW = (40, 56)
"""Height and width of the synthetic target (tiny, to keep the suite fast)."""

HOLE_BOX = (12, 16, 28, 40)
"""Synthetic hole as (top, left, bottom, right), exclusive ends, inside ``TARGET_HW``."""


def random_rgb(height: int, width: int, seed: int) -> np.ndarray:
    """A reproducible noise image, uint8 [H, W, 3]."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def box_mask(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A uint8 [H, W] mask, 255 inside ``box`` (top, left, bottom, right) and 0 elsewhere."""
    mask = np.zeros((height, width), dtype=np.uint8)
    top, left, bottom, right = box
    mask[top:bottom, left:right] = 255
    return mask


SceneFactory = Callable[..., Path]


@pytest.fixture
def make_scene(tmp_path: Path) -> SceneFactory:
    """Factory writing a valid scene folder; keyword arguments override its parts.

    Arguments: ``name``; ``num_references``; ``target`` (uint8 [H, W, 3]); ``mask`` (uint8 [H, W]);
    ``ground_truth`` (uint8 [H, W, 3] or None). References are noise of assorted sizes and formats.
    """

    def factory(
        name: str = "scene",
        num_references: int = 2,
        target: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        ground_truth: np.ndarray | None = None,
    ) -> Path:
        root = tmp_path / name
        (root / "ref").mkdir(parents=True)
        (root / "target").mkdir()
        for index in range(num_references):
            height, width = (48 + 4 * index, 36) if index % 2 else (36, 52)
            suffix = ".png" if index % 2 else ".jpg"
            Image.fromarray(random_rgb(height, width, seed=index)).save(
                root / "ref" / f"ref{index:02d}{suffix}"
            )
        height, width = TARGET_HW
        target = random_rgb(height, width, seed=100) if target is None else target
        mask = box_mask(height, width, HOLE_BOX) if mask is None else mask
        Image.fromarray(target).save(root / "target" / "target.png")
        Image.fromarray(mask).save(root / "target" / "mask.png")
        if ground_truth is not None:
            Image.fromarray(ground_truth).save(root / "target" / "gt.png")
        return root

    return factory


@pytest.fixture(params=REAL_SCENE_NAMES)
def real_scene_dir(request: pytest.FixtureRequest) -> Path:
    """One of the shared real scenes; skipped where the shared folder is absent."""
    path = SHARED_SCENES / request.param
    if not path.is_dir():
        pytest.skip(f"real scene not present: {path}")
    return path


@pytest.fixture
def default_hole() -> np.ndarray:
    """The synthetic scene's default hole as a bool [H, W] array (True = missing)."""
    return box_mask(*TARGET_HW, HOLE_BOX) > 0


@pytest.fixture
def default_target() -> np.ndarray:
    """The synthetic scene's default target, uint8 [H, W, 3]."""
    return random_rgb(*TARGET_HW, seed=100)
