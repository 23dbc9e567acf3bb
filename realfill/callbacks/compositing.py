"""Paste generated completions onto the target through a feathered copy of its mask.

The VAE round trip changes every pixel slightly, known ones included, so a sample is never
used as is: the scene mask is dilated (to cover the seam) and its edge blurred (to hide it),
and the sample is alpha-blended over the target with that soft mask. Pixels farther than
``dilation + blur`` from the hole stay byte-identical to the target.
"""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

MASK_THRESHOLD = 128
"""A scene-mask pixel (mode "L") at or above this value is missing."""


def _box_sum(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Sum of x over a (2r+1)x(2r+1) window, edges replicated; x is [1, 1, H, W].

    Summing 0/1 values in float32 is exact, so a window of all ones sums to exactly its size.
    """
    size = 2 * radius + 1
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    return F.avg_pool2d(padded, kernel_size=size, stride=1, divisor_override=1)


def _dilate(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Max filter over a (2r+1)x(2r+1) window, edges replicated; x is [1, 1, H, W].

    Replicating the edge equals ignoring pixels outside the image, as PIL's MaxFilter does.
    """
    size = 2 * radius + 1
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    return F.max_pool2d(padded, kernel_size=size, stride=1)


def feather_mask(mask: torch.Tensor, dilation: int = 1, blur: int = 1) -> torch.Tensor:
    """Soft compositing alpha from a hard mask: dilate by ``dilation`` px, then box-blur.

    ``mask`` is [H, W], bool or 0/1 float, 1 = missing (values above 0.5 count as missing).
    ``dilation`` is the radius of a square max filter (1 = the public implementation's 3x3
    MaxFilter), ``blur`` the radius of a square box blur (1 = its BoxBlur(1)); 0 skips a stage.
    Edges are replicated, so the image border neither fades a hole that touches it nor adds
    alpha away from the hole. Returns float32 [H, W] in [0, 1]: exactly 1 wherever the whole
    blur window lies in the dilated hole, exactly 0 farther than ``dilation + blur`` from it.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be [H, W], got shape {tuple(mask.shape)}")
    if dilation < 0 or blur < 0:
        raise ValueError(f"dilation and blur must be >= 0, got {dilation} and {blur}")
    hard = (mask.detach().to("cpu", torch.float32) > 0.5).to(torch.float32)[None, None]
    if dilation > 0:
        hard = _dilate(hard, dilation)
    if blur > 0:
        window = float((2 * blur + 1) ** 2)
        hard = _box_sum(hard, blur) / window
    return hard[0, 0].clamp_(0.0, 1.0)


def mask_to_tensor(mask: Image.Image, threshold: int = MASK_THRESHOLD) -> torch.Tensor:
    """A scene mask image (255 = missing) as a bool [H, W] tensor, True = missing."""
    return torch.from_numpy(np.asarray(mask.convert("L")) >= threshold)


def composite(
    generated: Image.Image,
    target: Image.Image,
    mask: Image.Image,
    dilation: int = 1,
    blur: int = 1,
) -> Image.Image:
    """Blend ``generated`` over ``target`` through the feathered scene ``mask``.

    ``generated`` is resized (bicubic) to the target's size when the model sampled at another
    resolution; ``mask`` (mode "L", 255 = missing) must already be at the target's size.
    Pixels with alpha 1 are the resized sample's bytes, pixels with alpha 0 (farther than
    ``dilation + blur`` from the hole) the target's bytes; the band between is rounded.
    """
    if mask.size != target.size:
        raise ValueError(
            f"mask size {mask.size} does not match target size {target.size} (width, height)"
        )
    target_rgb = target.convert("RGB")
    generated_rgb = generated.convert("RGB")
    if generated_rgb.size != target_rgb.size:
        generated_rgb = generated_rgb.resize(target_rgb.size, Image.Resampling.BICUBIC)
    alpha = feather_mask(mask_to_tensor(mask), dilation=dilation, blur=blur).numpy()[..., None]
    gen = np.asarray(generated_rgb, dtype=np.float32)
    tgt = np.asarray(target_rgb, dtype=np.float32)
    blended = gen * alpha + tgt * (1.0 - alpha)
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
