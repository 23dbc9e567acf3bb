"""A tiny, randomly initialised FLUX.1 Fill model built in code: offline tests and demos."""

import string

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
from transformers import CLIPTextModel, T5Config, T5EncoderModel, T5TokenizerFast

from realfill.modules.flux_fill import PATCH, FluxFillComponents, FluxFillFamily
from realfill.modules.tiny import byte_level_tokenizer, tiny_clip_config, tiny_vae

LATENT_CHANNELS = 4
"""Latent channels of the tiny VAE (FLUX.1's has 16)."""

HEAD_WIDTH = 16
"""Attention head width of the tiny transformer; its rotary axes split it (0, row, column)."""

ROTARY_AXES = (4, 6, 6)
"""Rotary dimensions per position axis, summing to `HEAD_WIDTH`."""

PIECE_SCORE, WORD_START_SCORE = -3.0, -2.5
"""Unigram log-probabilities of single characters and of word-initial characters."""


def character_t5_tokenizer() -> T5TokenizerFast:
    """A T5 (unigram) tokenizer over printable characters: no files, no download."""
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", WORD_START_SCORE)]
    vocab += [(c, PIECE_SCORE) for c in string.printable if not c.isspace()]
    vocab += [("\u2581" + c, WORD_START_SCORE) for c in string.ascii_letters + string.digits]
    return T5TokenizerFast(vocab=vocab, extra_ids=0)


def build_tiny_flux_components(
    seed: int, block_channels: tuple[int, ...], text_width: int, max_prompt_length: int
) -> FluxFillComponents:
    """Instantiate every FLUX.1 Fill component at toy size, weights drawn from `seed`."""
    torch.manual_seed(seed)
    depth = len(block_channels)
    vae_factor = 2 ** (depth - 1)
    tokenizer = byte_level_tokenizer(max_prompt_length)
    text_encoder = CLIPTextModel(tiny_clip_config(len(tokenizer), text_width, max_prompt_length))
    tokenizer_2 = character_t5_tokenizer()
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer_2),
            d_model=text_width,
            d_kv=text_width // 4,
            d_ff=2 * text_width,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
        )
    )
    vae = tiny_vae(
        block_channels,
        LATENT_CHANNELS,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.1159,
        scaling_factor=0.3611,
    )
    packed_latents = LATENT_CHANNELS * PATCH * PATCH
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=2 * packed_latents + vae_factor**2 * PATCH * PATCH,
        out_channels=packed_latents,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=HEAD_WIDTH,
        num_attention_heads=2,
        joint_attention_dim=text_width,
        pooled_projection_dim=text_width,
        guidance_embeds=True,
        axes_dims_rope=ROTARY_AXES,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15
    )
    return FluxFillComponents(
        vae, transformer, text_encoder, tokenizer, text_encoder_2, tokenizer_2, scheduler
    )


class TinyFluxFillInpainting(FluxFillFamily):
    """FLUX.1 Fill's architecture at toy size, random weights: runs anywhere in seconds."""

    def __init__(
        self,
        seed: int = 0,
        block_channels: tuple[int, ...] = (16, 32),
        text_width: int = 32,
        max_prompt_length: int = 77,
        guidance: float = 30.0,
    ) -> None:
        """
        Args:
            seed: Seed of the random weights; the same seed always builds the same model.
            block_channels: Channels of each VAE resolution level.
            text_width: Hidden size of both text encoders (the transformer's text inputs).
            max_prompt_length: Prompt length in tokens of both tokenizers.
            guidance: Distilled guidance strength fed to the transformer while training.
        """
        super().__init__(
            build_tiny_flux_components(seed, tuple(block_channels), text_width, max_prompt_length),
            guidance,
            max_prompt_length,
        )
