"""A tiny, randomly initialised SD-style inpainting model built in code: offline tests and demos."""

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from realfill.modules.stable_diffusion import StableDiffusionComponents, StableDiffusionFamily


def byte_level_tokenizer(max_length: int) -> CLIPTokenizer:
    """A CLIP tokenizer whose vocabulary is every byte (no merges): no files, no download."""
    symbols = sorted(ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in symbols:
        vocab[symbol] = len(vocab)
        vocab[symbol + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def tiny_clip_config(vocab_size: int, width: int, max_length: int) -> CLIPTextConfig:
    """A two-layer CLIP text encoder config over the byte-level vocabulary."""
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=2 * width,
        projection_dim=width,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=max_length,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def tiny_vae(block_channels: tuple[int, ...], latent_channels: int = 4, **config) -> AutoencoderKL:
    """A one-layer-per-level VAE; `config` adds family-specific settings (scaling, shift,
    GroupNorm groups: one channel per group unless given)."""
    depth = len(block_channels)
    config.setdefault("norm_num_groups", min(block_channels))
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * depth,
        up_block_types=("UpDecoderBlock2D",) * depth,
        block_out_channels=block_channels,
        latent_channels=latent_channels,
        layers_per_block=1,
        **config,
    )


def sd2_training_scheduler(prediction_type: str = "epsilon") -> DDPMScheduler:
    """SD 2 inpainting's training schedule: 1000 scaled-linear steps."""
    return DDPMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        steps_offset=1,
        prediction_type=prediction_type,
    )


def build_tiny_components(
    seed: int,
    block_channels: tuple[int, ...],
    text_width: int,
    max_prompt_length: int,
    prediction_type: str,
) -> StableDiffusionComponents:
    """Instantiate every component from a small config with weights drawn from `seed`."""
    torch.manual_seed(seed)
    depth = len(block_channels)
    tokenizer = byte_level_tokenizer(max_prompt_length)
    text_encoder = CLIPTextModel(tiny_clip_config(len(tokenizer), text_width, max_prompt_length))
    vae = tiny_vae(block_channels)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=9,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * (depth - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (depth - 1),
        block_out_channels=block_channels,
        layers_per_block=1,
        cross_attention_dim=text_width,
        attention_head_dim=4,
        norm_num_groups=min(block_channels),
    )
    scheduler = sd2_training_scheduler(prediction_type)
    return StableDiffusionComponents(vae, unet, text_encoder, tokenizer, scheduler)


class TinyStableDiffusionInpainting(StableDiffusionFamily):
    """SD-2-inpainting's architecture at toy size, random weights: runs anywhere in seconds."""

    def __init__(
        self,
        seed: int = 0,
        block_channels: tuple[int, ...] = (16, 32),
        text_width: int = 32,
        max_prompt_length: int = 77,
        prediction_type: str = "epsilon",
    ) -> None:
        """
        Args:
            seed: Seed of the random weights; the same seed always builds the same model.
            block_channels: Channels of each VAE and UNet resolution level.
            text_width: Hidden size of the text encoder (and the UNet's cross-attention).
            max_prompt_length: Prompt length in tokens (bytes, for this tokenizer): 77, as
                CLIP's, so a scene's prompt.txt is not cut (a warning on every sampling call).
            prediction_type: What the UNet predicts: "epsilon" or "v_prediction".
        """
        super().__init__(
            build_tiny_components(
                seed, tuple(block_channels), text_width, max_prompt_length, prediction_type
            )
        )
