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

from realfill.errors import ConfigError

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


def check_feathering(owner: str, dilation: int, blur: int) -> None:
    """Refuse (`ConfigError` naming `owner`) feathering settings a completion cannot use:
    negative sizes, or a blur wider than the dilation, whose window reaches back into the hole
    and blends the target's missing pixels into the fill's rim."""
    if dilation < 0 or blur < 0:
        raise ConfigError(
            f"{owner}: feather_dilation and feather_blur must be >= 0, got {dilation} and {blur}"
        )
    if blur > dilation:
        raise ConfigError(
            f"{owner}: feather_blur ({blur}) must be <= feather_dilation ({dilation}): a wider "
            "blur reaches into the hole and blends the target's missing pixels into the fill"
        )


def mask_to_tensor(mask: Image.Image, threshold: int = MASK_THRESHOLD) -> torch.Tensor:
    """A scene mask image (255 = missing) as a bool [H, W] tensor, True = missing."""
    return torch.from_numpy(np.asarray(mask.convert("L")) >= threshold)


class FeatheredComposite:
    """A target and its feathered mask, prepared once to paste many samples onto.

    The alpha, the target's pixels and where alpha is 1 or strictly between 0 and 1 depend on
    the scene alone: a candidate then costs a resize, a copy and a blend of the feather band,
    not a full-image float blend (on a 4032x4032 target, 0.3 s instead of 1.3 s).
    """

    def __init__(self, target: Image.Image, mask: Image.Image, dilation: int = 1, blur: int = 1):
        """``mask`` (mode "L", 255 = missing) must be at the target's size; ``dilation`` and
        ``blur`` are `feather_mask`'s."""
        if mask.size != target.size:
            raise ValueError(
                f"mask size {mask.size} does not match target size {target.size} (width, height)"
            )
        self.size = target.size
        self.target = np.asarray(target.convert("RGB"))
        alpha = feather_mask(mask_to_tensor(mask), dilation=dilation, blur=blur).numpy()
        self.filled = np.repeat((alpha == 1.0)[..., None], 3, axis=-1)  # full-shape: fast
        self.band = np.flatnonzero((alpha > 0.0) & (alpha < 1.0))
        self.band_alpha = alpha.reshape(-1)[self.band, None]

    def __call__(self, generated: Image.Image) -> Image.Image:
        """Blend ``generated`` over the target, resized (bicubic) to the target's size when the
        model sampled at another resolution. Pixels with alpha 1 are the resized sample's
        bytes, pixels with alpha 0 (farther than ``dilation + blur`` from the hole) the
        target's bytes; the band between is the rounded float32 blend."""
        generated = generated.convert("RGB")
        if generated.size != self.size:
            generated = generated.resize(self.size, Image.Resampling.BICUBIC)
        sample = np.asarray(generated)
        out = self.target.copy()
        np.copyto(out, sample, where=self.filled)
        band_sample = sample.reshape(-1, 3)[self.band].astype(np.float32)
        band_target = self.target.reshape(-1, 3)[self.band].astype(np.float32)
        blended = band_sample * self.band_alpha + band_target * (1.0 - self.band_alpha)
        out.reshape(-1, 3)[self.band] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        return Image.fromarray(out)


def composite(
    generated: Image.Image,
    target: Image.Image,
    mask: Image.Image,
    dilation: int = 1,
    blur: int = 1,
) -> Image.Image:
    """Blend one ``generated`` sample over ``target`` through the feathered scene ``mask``
    (see `FeatheredComposite`, which prepares the scene once for many samples)."""
    return FeatheredComposite(target, mask, dilation, blur)(generated)
