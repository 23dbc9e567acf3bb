"""The metric math, as small pure functions on tensors: masked low-level metrics and the
cosine of image embeddings.

Images are float tensors [1, 3, H, W] in [0, 1]; a mask is a bool tensor [H, W], True where
the target was missing (the region a method filled). A masked metric compares only the filled
region: every pixel outside the mask is replaced by the ground truth's before comparing, so
what a method did there cannot change the value.
"""

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

DATA_RANGE = 1.0
"""Pixel values span [0, 1]."""
MASK_THRESHOLD = 128
"""A mask pixel (mode "L") at or above this value is missing (filled by the method)."""
MIN_CROP_SIDE = 32
"""The masked crop fed to a perceptual network is grown to at least this many pixels a side
(as far as the image allows), so a thin hole still passes a CNN's downsampling."""

ImageDistance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A network comparing two [N, 3, H, W] images in [0, 1]: one distance per image."""
DistanceMap = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A network comparing two [N, 3, H, W] images in [0, 1] pixel by pixel: [N, 1, H, W]."""


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """An image as a float [1, 3, H, W] tensor in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


def mask_to_bool(mask: Image.Image) -> torch.Tensor:
    """A scene mask image (white = missing) as a bool [H, W] tensor, True = missing."""
    return torch.from_numpy(np.asarray(mask.convert("L")) >= MASK_THRESHOLD)


def _check(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
    """Reject mismatched shapes and an empty mask (a masked metric of nothing is undefined)."""
    if prediction.shape != target.shape or prediction.shape[-2:] != mask.shape:
        raise ValueError(
            f"shapes differ: prediction {tuple(prediction.shape)}, target {tuple(target.shape)}, "
            f"mask {tuple(mask.shape)}"
        )
    if not bool(mask.any()):
        raise ValueError("the mask is empty: a masked metric needs at least one missing pixel")


def keep_masked(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The prediction inside the mask and the target everywhere else."""
    return torch.where(mask[None, None], prediction, target)


def masked_psnr(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR in dB over the masked pixels only (all channels); inf when they are identical."""
    _check(prediction, target, mask)
    inside = mask[None, None].expand_as(prediction)
    value = peak_signal_noise_ratio(prediction[inside], target[inside], data_range=DATA_RANGE)
    return float(value)


def masked_ssim(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of the SSIM map over the masked pixels, the prediction's outside pixels replaced by
    the target's (so the windows that straddle the mask's edge see only the target outside)."""
    _check(prediction, target, mask)
    _, ssim_map = structural_similarity_index_measure(
        keep_masked(prediction, target, mask),
        target,
        data_range=DATA_RANGE,
        return_full_image=True,
    )
    return float(ssim_map.mean(dim=1)[0][mask].mean())


def mask_box(mask: torch.Tensor, min_side: int = MIN_CROP_SIDE) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the mask's bounding box, grown around its centre to at
    least `min_side` per side where the image is large enough."""
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    height, width = mask.shape

    def span(low: int, high: int, size: int) -> tuple[int, int]:
        side = min(size, max(min_side, high - low))
        start = max(0, min(size - side, (low + high - side) // 2))
        return start, start + side

    top, bottom = span(int(rows[0]), int(rows[-1]) + 1, height)
    left, right = span(int(cols[0]), int(cols[-1]) + 1, width)
    return top, bottom, left, right


def masked_perceptual(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, distance: ImageDistance
) -> float:
    """A perceptual distance (LPIPS) of the masked region: both images cropped to the mask's
    bounding box, the prediction's pixels outside the mask replaced by the target's."""
    _check(prediction, target, mask)
    top, bottom, left, right = mask_box(mask)
    filled = keep_masked(prediction, target, mask)[..., top:bottom, left:right]
    return float(distance(filled, target[..., top:bottom, left:right]).reshape(-1)[0])


def masked_perceptual_map(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, distances: DistanceMap
) -> float:
    """A perceptual distance (LPIPS) inside the mask, as the paper computes its low-level
    metrics: the network's per-pixel distance map (each layer's upsampled to the image, LPIPS's
    `spatial` mode) averaged over the masked pixels, the prediction's pixels outside the mask
    replaced by the target's. Unlike a crop, the known pixels never dilute the value."""
    _check(prediction, target, mask)
    distance_map = distances(keep_masked(prediction, target, mask), target)
    return float(distance_map.reshape(mask.shape)[mask].mean())


def cosine_similarity(first: torch.Tensor, second: torch.Tensor) -> float:
    """Cosine of the angle between two embeddings ([D] or [1, D])."""
    return float(F.cosine_similarity(first.reshape(1, -1), second.reshape(1, -1)).reshape(-1)[0])
