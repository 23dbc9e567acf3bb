"""Paired augmentation: one random resize, crop and flip applied alike to an image and its masks.

Masks are resampled with the image's own filter and then every value above 0 becomes 1, so a
pixel whose footprint touches a masked source pixel stays masked: pass masks where 1 marks the
region to be conservative about (e.g. the target's hole), never the known region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def resized_size(height: int, width: int, shorter_side: int) -> tuple[int, int]:
    """Height and width after scaling so the shorter side is ``shorter_side`` (aspect kept)."""
    scale = shorter_side / min(height, width)
    if height <= width:
        return shorter_side, max(shorter_side, round(width * scale))
    return max(shorter_side, round(height * scale)), shorter_side


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample a float [C, H, W] tensor to ``size`` with antialiased bilinear filtering."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(
        image.unsqueeze(0), size=size, mode="bilinear", antialias=True, align_corners=False
    ).squeeze(0)


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample a 0/1 float [1, H, W] mask like an image; any pixel it touches becomes 1."""
    return (resize_image(mask, size) > 0).to(mask.dtype)


def resize_shorter_side(
    image: torch.Tensor, masks: list[torch.Tensor], shorter_side: int
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Scale an image and its masks together so the shorter side is ``shorter_side``."""
    size = resized_size(image.shape[-2], image.shape[-1], shorter_side)
    return resize_image(image, size), [resize_mask(mask, size) for mask in masks]


def reduction_factor(height: int, width: int, shorter_side: int) -> int:
    """The largest integer factor that keeps the shorter side at least ``shorter_side``."""
    return max(1, min(height, width) // shorter_side)


def reduce_image(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Average ``factor`` x ``factor`` pixel blocks of a float [C, H, W] tensor (the partial
    blocks at the far edges too): an exact box downscale, which does not blur as resampling
    does, so a photo reduced by it and resampled later is resampled only once."""
    if factor == 1:
        return image
    return F.avg_pool2d(image.unsqueeze(0), factor, ceil_mode=True).squeeze(0)


def upscaled_side(resolution: int, max_upscale: float) -> int:
    """The longest shorter side the random resize may pick: ceil(resolution * max_upscale)."""
    return math.ceil(resolution * max_upscale)


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """A uniform integer in [low, high] (inclusive) from ``generator``."""
    return int(torch.randint(low, high + 1, (1,), generator=generator).item())


@dataclass(frozen=True)
class CropWindow:
    """Where a training crop came from, in the coordinates SDXL's micro-conditioning uses."""

    resized_size: tuple[int, int]
    """Height and width of the randomly resized image the crop was cut from."""
    top: int
    """Rows cut off above the crop, in the resized (and possibly mirrored) image."""
    left: int
    """Columns cut off left of the crop, in the resized image as mirrored (if it was)."""
    flipped: bool
    """Whether the example was mirrored left to right."""


def random_resized_crop_with_window(
    image: torch.Tensor,
    masks: list[torch.Tensor],
    resolution: int,
    max_upscale: float,
    hflip_probability: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor], CropWindow]:
    """`random_resized_crop`, also returning the crop's `CropWindow`.

    A mirrored crop reports its position in the mirrored image (``left`` counted from the
    mirrored image's left edge), so cropping the mirrored resized image there gives the example.
    """
    if resolution < 1 or max_upscale < 1.0:
        raise ValueError(
            f"need resolution >= 1 and max_upscale >= 1, got {resolution}, {max_upscale}"
        )
    for mask in masks:
        if mask.shape[-2:] != image.shape[-2:]:
            raise ValueError(f"mask shape {tuple(mask.shape)} != image shape {tuple(image.shape)}")
    shorter_side = _randint(resolution, upscaled_side(resolution, max_upscale), generator)
    image, masks = resize_shorter_side(image, masks, shorter_side)
    height, width = image.shape[-2:]
    top = _randint(0, height - resolution, generator)
    left = _randint(0, width - resolution, generator)
    window = (..., slice(top, top + resolution), slice(left, left + resolution))
    image, masks = image[window], [mask[window] for mask in masks]
    flipped = torch.rand((), generator=generator).item() < hflip_probability
    if flipped:
        image, masks = image.flip(-1), [mask.flip(-1) for mask in masks]
        left = width - left - resolution
    crop = CropWindow(resized_size=(height, width), top=top, left=left, flipped=flipped)
    return image.contiguous(), [mask.contiguous() for mask in masks], crop


def random_resized_crop(
    image: torch.Tensor,
    masks: list[torch.Tensor],
    resolution: int,
    max_upscale: float,
    hflip_probability: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Resize, crop to ``resolution`` square and maybe flip an image and its masks identically.

    The shorter side is first scaled to a uniform integer in
    [resolution, ceil(max_upscale * resolution)], then a uniformly placed square is cropped and,
    with ``hflip_probability``, mirrored left to right. ``image`` is float [C, H, W]; each mask
    is float [1, H, W] with 0/1 values and stays 0/1 (see the module docstring).
    """
    image, masks, _ = random_resized_crop_with_window(
        image, masks, resolution, max_upscale, hflip_probability, generator
    )
    return image, masks
