"""The architecture of the small inpainting model that `python -m realfill.pretrain` trains.

SD-2-inpainting's design (a KL autoencoder, a UNet with the 9-channel inpainting input, a CLIP
text encoder, the DDPM schedule), scaled down until it trains from scratch on a 2-core CPU in
under an hour: a 4x autoencoder (SD's is 8x) so that 128 px images keep 32x32 latents, a
three-level UNet with attention at its two coarser levels, and a two-layer text encoder over
bytes (no vocabulary files). The trained weights ship in `models/small-inpainting/`, a diffusers
folder that `StableDiffusionInpainting` loads like any other checkpoint.
"""

from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel

from realfill.modules.stable_diffusion import StableDiffusionComponents
from realfill.modules.tiny import (
    byte_level_tokenizer,
    sd2_training_scheduler,
    tiny_clip_config,
    tiny_vae,
)


@dataclass
class SmallModelConfig:
    """The sizes of the small inpainting model."""

    vae_channels: tuple[int, ...] = (32, 64, 64)
    """Autoencoder channels per level; len - 1 halvings (4x for three levels)."""
    unet_channels: tuple[int, ...] = (64, 128, 128)
    """UNet channels per resolution level."""
    attention_levels: tuple[int, ...] = (1, 2)
    """UNet levels (0 = finest) with self- and cross-attention blocks."""
    vae_norm_groups: int = 8
    """GroupNorm groups in the autoencoder: several channels per group. With one channel per
    group (as at SD's widths with fewer channels) every feature map is normalised on its own,
    and an image's mean colour cannot pass through; the autoencoder trained worse than a
    constant colour."""
    unet_norm_groups: int = 16
    """GroupNorm groups in the UNet (4 channels per group at the finest level)."""
    attention_heads: int = 4
    """Attention heads per transformer block (32 channels each at 128 channels)."""
    text_width: int = 64
    """Text encoder width (and the UNet's cross-attention input)."""
    max_prompt_length: int = 77
    """Prompt length in tokens (bytes, for this tokenizer), as CLIP's."""


def small_unet(config: SmallModelConfig) -> UNet2DConditionModel:
    """The 9-channel inpainting UNet (4 noisy latents, 1 mask, 4 masked-image latents)."""
    depth = len(config.unet_channels)
    down = tuple(
        "CrossAttnDownBlock2D" if level in config.attention_levels else "DownBlock2D"
        for level in range(depth)
    )
    up = tuple(
        "CrossAttnUpBlock2D" if level in config.attention_levels else "UpBlock2D"
        for level in reversed(range(depth))
    )
    return UNet2DConditionModel(
        sample_size=32,
        in_channels=9,
        out_channels=4,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=config.unet_channels,
        layers_per_block=1,
        cross_attention_dim=config.text_width,
        attention_head_dim=config.attention_heads,  # diffusers' UNet reads it as the head count
        norm_num_groups=config.unet_norm_groups,
    )


def small_vae(config: SmallModelConfig) -> AutoencoderKL:
    """The KL autoencoder: 3 channels to 4 latent channels, len(vae_channels) - 1 halvings."""
    return tiny_vae(
        tuple(config.vae_channels),
        norm_num_groups=config.vae_norm_groups,
        mid_block_add_attention=False,
    )


def build_small_components(
    config: SmallModelConfig = SmallModelConfig(),  # noqa: B008 (a frozen default)
    seed: int = 0,
) -> StableDiffusionComponents:
    """Every component of the small model, randomly initialised from `seed`."""
    torch.manual_seed(seed)
    tokenizer = byte_level_tokenizer(config.max_prompt_length)
    text_config = tiny_clip_config(len(tokenizer), config.text_width, config.max_prompt_length)
    return StableDiffusionComponents(
        vae=small_vae(config),
        unet=small_unet(config),
        text_encoder=CLIPTextModel(text_config),
        tokenizer=tokenizer,
        scheduler=sd2_training_scheduler(),
    )
