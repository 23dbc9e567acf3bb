"""A tiny, randomly initialised SDXL inpainting model built in code: offline tests and demos."""

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from realfill.modules.sdxl import (
    TIME_ID_COUNT,
    StableDiffusionXLComponents,
    StableDiffusionXLFamily,
)
from realfill.modules.tiny import byte_level_tokenizer, tiny_clip_config, tiny_vae


def build_tiny_sdxl_components(
    seed: int,
    block_channels: tuple[int, ...],
    text_width: int,
    time_embed_width: int,
    max_prompt_length: int,
) -> StableDiffusionXLComponents:
    """Instantiate every SDXL component from a small config with weights drawn from `seed`."""
    torch.manual_seed(seed)
    depth = len(block_channels)
    tokenizer = byte_level_tokenizer(max_prompt_length)
    tokenizer_2 = byte_level_tokenizer(max_prompt_length)
    text_config = tiny_clip_config(len(tokenizer), text_width, max_prompt_length)
    text_encoder = CLIPTextModel(text_config)
    text_encoder_2 = CLIPTextModelWithProjection(text_config)
    vae = tiny_vae(block_channels, force_upcast=True)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=9,
        out_channels=4,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (depth - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (depth - 1) + ("UpBlock2D",),
        block_out_channels=block_channels,
        layers_per_block=1,
        cross_attention_dim=2 * text_width,
        attention_head_dim=4,
        use_linear_projection=True,
        norm_num_groups=min(block_channels),
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_width,
        projection_class_embeddings_input_dim=TIME_ID_COUNT * time_embed_width + text_width,
    )
    scheduler = DDPMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        steps_offset=1,
    )
    return StableDiffusionXLComponents(
        vae, unet, text_encoder, tokenizer, scheduler, text_encoder_2, tokenizer_2
    )


class TinyStableDiffusionXLInpainting(StableDiffusionXLFamily):
    """SDXL inpainting's architecture at toy size, random weights: runs anywhere in seconds."""

    def __init__(
        self,
        seed: int = 0,
        block_channels: tuple[int, ...] = (16, 32),
        text_width: int = 32,
        time_embed_width: int = 8,
        max_prompt_length: int = 77,
        vae_in_fp32: bool = True,
    ) -> None:
        """
        Args:
            seed: Seed of the random weights; the same seed always builds the same model.
            block_channels: Channels of each VAE and UNet resolution level.
            text_width: Hidden size of each text encoder (the UNet's cross-attention takes both,
                concatenated) and of the pooled projection.
            time_embed_width: Sinusoidal width of each of the 6 size/crop time ids.
            max_prompt_length: Prompt length in tokens (bytes, for this tokenizer).
            vae_in_fp32: Keep the VAE in fp32 whatever the trainer precision.
        """
        super().__init__(
            build_tiny_sdxl_components(
                seed, tuple(block_channels), text_width, time_embed_width, max_prompt_length
            ),
            vae_in_fp32,
        )
