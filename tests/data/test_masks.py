"""Random training masks: shape, values, reproducibility, and each config field's effect."""

from __future__ import annotations

import pytest
import torch

from realfill.data import TrainingMaskConfig, random_training_mask
from realfill.errors import ConfigError


def draw(config: TrainingMaskConfig, seed: int, height: int = 48, width: int = 64) -> torch.Tensor:
    """One mask from a fresh generator seeded with ``seed``."""
    return random_training_mask(height, width, config, torch.Generator().manual_seed(seed))


def test_shape_dtype_and_values() -> None:
    for seed in range(20):
        mask = draw(TrainingMaskConfig(), seed)
        assert mask.shape == (1, 48, 64) and mask.dtype == torch.float32
        assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_reproducible_with_same_seed_and_varies_with_another() -> None:
    config = TrainingMaskConfig(full_mask_probability=0.0)
    assert torch.equal(draw(config, 7), draw(config, 7))
    assert any(not torch.equal(draw(config, 7), draw(config, seed)) for seed in range(8, 12))


def test_default_rng_when_no_generator() -> None:
    config = TrainingMaskConfig(full_mask_probability=0.0)
    torch.manual_seed(3)
    first = random_training_mask(32, 32, config)
    torch.manual_seed(3)
    assert torch.equal(first, random_training_mask(32, 32, config))


def test_does_not_touch_default_rng_when_given_a_generator() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    draw(TrainingMaskConfig(), seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_full_mask_probability_one_gives_all_ones() -> None:
    config = TrainingMaskConfig(full_mask_probability=1.0, invert_probability=1.0)
    for seed in range(5):
        assert bool((draw(config, seed) == 1).all())


def test_full_mask_frequency_is_roughly_the_probability() -> None:
    config = TrainingMaskConfig(
        full_mask_probability=0.1, invert_probability=0.0, min_rectangles=0, max_rectangles=0
    )
    generator = torch.Generator().manual_seed(0)
    masks = [random_training_mask(16, 16, config, generator) for _ in range(2000)]
    fraction = sum(bool(mask.all()) for mask in masks) / len(masks)
    assert 0.07 < fraction < 0.13


def test_invert_gives_the_complement_of_the_same_rectangles() -> None:
    plain = TrainingMaskConfig(full_mask_probability=0.0, invert_probability=0.0)
    inverted = TrainingMaskConfig(full_mask_probability=0.0, invert_probability=1.0)
    for seed in range(5):
        mask = draw(plain, seed)
        assert 0 < mask.sum() < mask.numel()
        assert torch.equal(draw(inverted, seed), 1.0 - mask)


def test_margin_is_respected_when_not_inverted() -> None:
    config = TrainingMaskConfig(
        full_mask_probability=0.0,
        invert_probability=0.0,
        min_rectangles=29,
        max_size_fraction=0.6,
        margin_fraction=0.05,
    )
    union = torch.zeros(1, 100, 80)
    for seed in range(30):
        union = torch.maximum(union, draw(config, seed, height=100, width=80))
    assert union[:, :5].sum() == 0 and union[:, -5:].sum() == 0  # 5% of 100 rows
    assert union[:, :, :4].sum() == 0 and union[:, :, -4:].sum() == 0  # 5% of 80 columns
    assert union[:, 5].sum() > 0 and union[:, :, 4].sum() > 0  # and reaches the margin


def test_rectangle_sides_follow_size_fractions() -> None:
    config = TrainingMaskConfig(
        full_mask_probability=0.0,
        invert_probability=0.0,
        min_rectangles=1,
        max_rectangles=1,
        min_size_fraction=0.1,
        max_size_fraction=0.2,
    )
    for seed in range(30):
        rows, cols = draw(config, seed, height=100, width=200)[0].nonzero(as_tuple=True)
        height = int(rows.max() - rows.min()) + 1
        width = int(cols.max() - cols.min()) + 1
        assert 10 <= height <= 20 and 20 <= width <= 40
        assert len(rows) == height * width  # a single solid rectangle


def test_zero_rectangles_gives_empty_mask() -> None:
    config = TrainingMaskConfig(
        full_mask_probability=0.0, invert_probability=0.0, min_rectangles=0, max_rectangles=0
    )
    assert draw(config, 0).sum() == 0


def test_tiny_images_still_work() -> None:
    for height, width in [(1, 1), (2, 3), (5, 1)]:
        mask = draw(TrainingMaskConfig(full_mask_probability=0.0), 0, height, width)
        assert mask.shape == (1, height, width)


@pytest.mark.parametrize(
    "overrides",
    [
        {"full_mask_probability": -0.1},
        {"full_mask_probability": 1.5},
        {"invert_probability": 2.0},
        {"min_rectangles": -1},
        {"min_rectangles": 5, "max_rectangles": 4},
        {"min_size_fraction": 0.0},
        {"min_size_fraction": 0.3, "max_size_fraction": 0.2},
        {"max_size_fraction": 1.5},
        {"margin_fraction": -0.01},
        {"margin_fraction": 0.5},
    ],
)
def test_bad_config_is_a_config_error_naming_the_key(overrides: dict) -> None:
    with pytest.raises(ConfigError, match=r"^data\.masks"):
        TrainingMaskConfig(**overrides)


def test_bad_size_raises_value_error() -> None:
    with pytest.raises(ValueError, match="positive"):
        random_training_mask(0, 8, TrainingMaskConfig())
