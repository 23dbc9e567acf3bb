"""The masked diffusion objective: the target's unknown pixels never teach the model anything."""

import torch
import torch.nn.functional as F


def known_region_weight(known_mask: torch.Tensor, latent_size: tuple[int, int]) -> torch.Tensor:
    """Per-latent loss weight: 1 where every pixel under the latent cell is known, else 0.

    Max-pooling the unknown region (rather than nearest or area resizing) is conservative: a
    latent cell that touches the target's hole at all is left out of the loss.
    """
    unknown = F.adaptive_max_pool2d(1.0 - known_mask.float(), latent_size)
    return 1.0 - unknown


def masked_mse(
    prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Mean squared error over the weighted elements only (weight broadcasts over channels)."""
    weight = weight.to(prediction.dtype).expand_as(prediction)
    squared = (prediction - target).pow(2) * weight
    return squared.sum() / weight.sum().clamp_min(1.0)
