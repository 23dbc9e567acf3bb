"""Random training masks: unions of rectangles, sometimes inverted, sometimes the whole image.

This follows the public RealFill training script: for a reference image, 10% of the time the whole
image is masked, otherwise 1-29 rectangles with sides of 3-25% of the image side (kept 1% off the
border) are masked, and half the time the mask is inverted so the model also practises outpainting.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from realfill.errors import ConfigError


@dataclass
class TrainingMaskConfig:
    """How `random_training_mask` draws the region a reference image must regenerate."""

    full_mask_probability: float = 0.1
    """Probability that a training mask covers the whole image (pure generation, no context)."""
    min_rectangles: int = 1
    """Fewest rectangles in the union, when the mask is not the whole image."""
    max_rectangles: int = 29
    """Most rectangles in the union (inclusive)."""
    min_size_fraction: float = 0.03
    """Shortest rectangle side, as a fraction of the image side along the same axis."""
    max_size_fraction: float = 0.25
    """Longest rectangle side, as a fraction of the image side along the same axis."""
    margin_fraction: float = 0.01
    """Rectangles keep at least this fraction of the image side away from the border."""
    invert_probability: float = 0.5
    """Probability of inverting the union of rectangles, so the model also practises outpainting."""

    def __post_init__(self) -> None:
        """Reject values that cannot describe a mask distribution, with a clear message."""
        validate_mask_config(self)


def _check_probability(name: str, value: float) -> None:
    """Raise ConfigError unless ``value`` is a probability."""
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"data.masks.{name} must be in [0, 1], got {value}")


def validate_mask_config(config: TrainingMaskConfig) -> None:
    """Raise ConfigError if ``config`` has an out-of-range or inconsistent field."""
    _check_probability("full_mask_probability", config.full_mask_probability)
    _check_probability("invert_probability", config.invert_probability)
    if config.min_rectangles < 0:
        raise ConfigError(f"data.masks.min_rectangles must be >= 0, got {config.min_rectangles}")
    if config.max_rectangles < config.min_rectangles:
        raise ConfigError(
            "data.masks.max_rectangles must be >= min_rectangles, got "
            f"{config.max_rectangles} < {config.min_rectangles}"
        )
    if not 0.0 < config.min_size_fraction <= config.max_size_fraction <= 1.0:
        raise ConfigError(
            "data.masks needs 0 < min_size_fraction <= max_size_fraction <= 1, got "
            f"{config.min_size_fraction} and {config.max_size_fraction}"
        )
    if not 0.0 <= config.margin_fraction < 0.5:
        raise ConfigError(
            f"data.masks.margin_fraction must be in [0, 0.5), got {config.margin_fraction}"
        )


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """A uniform integer in [low, high] (inclusive) from ``generator``."""
    return int(torch.randint(low, high + 1, (1,), generator=generator).item())


def _bernoulli(probability: float, generator: torch.Generator | None) -> bool:
    """True with ``probability``, drawn from ``generator``."""
    return bool(torch.rand((), generator=generator).item() < probability)


def _side_range(length: int, config: TrainingMaskConfig) -> tuple[int, int, int]:
    """Margin, shortest and longest rectangle side in pixels along an axis of ``length`` pixels."""
    margin = int(config.margin_fraction * length)
    room = length - 2 * margin
    longest = min(room, max(1, round(config.max_size_fraction * length)))
    shortest = min(longest, max(1, round(config.min_size_fraction * length)))
    return margin, shortest, longest


def _random_span(
    length: int, config: TrainingMaskConfig, generator: torch.Generator | None
) -> slice:
    """A random rectangle side along one axis, placed inside the margins."""
    margin, shortest, longest = _side_range(length, config)
    size = _randint(shortest, longest, generator)
    start = _randint(margin, length - margin - size, generator)
    return slice(start, start + size)


def random_training_mask(
    height: int,
    width: int,
    config: TrainingMaskConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw a float32 [1, H, W] mask of 0/1, 1 = the region the model must generate.

    Only ``generator`` (torch's default RNG if None) is used, so a seeded generator reproduces it.
    """
    if height < 1 or width < 1:
        raise ValueError(f"mask size must be positive, got {height}x{width} (HxW)")
    mask = torch.zeros(1, height, width, dtype=torch.float32)
    if _bernoulli(config.full_mask_probability, generator):
        return mask.fill_(1.0)
    for _ in range(_randint(config.min_rectangles, config.max_rectangles, generator)):
        rows = _random_span(height, config, generator)
        cols = _random_span(width, config, generator)
        mask[:, rows, cols] = 1.0
    if _bernoulli(config.invert_probability, generator):
        mask = 1.0 - mask
    return mask
