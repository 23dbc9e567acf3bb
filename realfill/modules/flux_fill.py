"""FLUX.1 Fill (a rectified-flow transformer fill model) as a base-model plug-in.

What differs from the SD family, all kept inside this class: latents are shifted and scaled by
the VAE's `shift_factor`, the transformer reads 2x2 patches of them packed into tokens (with the
masked image's latents and the pixel mask, 8x8 blocks folded into channels, concatenated along
the features), training is flow matching (noisy = (1 - sigma) x + sigma noise, the target is the
velocity noise - x, as `FlowMatchEulerDiscreteScheduler` integrates it), the text is a CLIP
pooled vector plus T5 tokens, and the distilled guidance strength is an input of the model.

Latents cross the plug-in interface unpacked, [B, C, h, w], so `RealFillModule`'s known-region
loss weight applies to them exactly as for SD: the target's hole never reaches the loss.
"""

from dataclasses import dataclass

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    FluxFillPipeline,
    FluxTransformer2DModel,
)
from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

from realfill.errors import ConfigError, ModelLoadError
from realfill.modules.base_model import Conditioning, InpaintingBaseModel, prompt_tokens
from realfill.modules.loading import load_components, naming_the_checkpoint
from realfill.modules.lora_io import PEFT_KEYS, TEXT_ENCODER_KEYS

PATCH = 2
"""Flux packs 2x2 latent cells into one token."""

TIMESTEP_SCALE = 1000.0
"""The scheduler's timesteps are sigma x 1000; the transformer takes sigma."""


@dataclass
class FluxFillComponents:
    """The parts of a FLUX.1 Fill checkpoint that training and sampling use."""

    vae: AutoencoderKL
    transformer: FluxTransformer2DModel
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    text_encoder_2: T5EncoderModel
    tokenizer_2: T5TokenizerFast
    scheduler: FlowMatchEulerDiscreteScheduler


def pack(latents: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] -> [B, h/2 * w/2, 4C] tokens of 2x2 patches, as the Flux pipelines pack."""
    b, c, h, w = latents.shape
    patches = latents.view(b, c, h // PATCH, PATCH, w // PATCH, PATCH).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(b, (h // PATCH) * (w // PATCH), c * PATCH * PATCH)


def unpack(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The inverse of `pack`: [B, h/2 * w/2, 4C] -> [B, C, h, w]."""
    b, _, features = tokens.shape
    channels = features // (PATCH * PATCH)
    patches = tokens.view(b, height // PATCH, width // PATCH, channels, PATCH, PATCH)
    return patches.permute(0, 3, 1, 4, 2, 5).reshape(b, channels, height, width)


def token_positions(height: int, width: int, device: torch.device) -> torch.Tensor:
    """[h/2 * w/2, 3] rotary position ids (0, row, column) of the packed image tokens."""
    rows, cols = height // PATCH, width // PATCH
    ids = torch.zeros(rows, cols, 3, device=device)
    ids[..., 1] = torch.arange(rows, device=device)[:, None]
    ids[..., 2] = torch.arange(cols, device=device)[None, :]
    return ids.reshape(rows * cols, 3)


class FluxFillFamily(InpaintingBaseModel):
    """Shared implementation for any FLUX.1 Fill model, whatever its source."""

    pipeline_class = FluxFillPipeline
    denoiser_name = "transformer"
    adapted = {"transformer": PEFT_KEYS, "text_encoder": TEXT_ENCODER_KEYS}  # T5 stays frozen
    sampling_scheduler = "FlowMatchEulerDiscreteScheduler"

    def __init__(
        self, components: FluxFillComponents, guidance: float, max_sequence_length: int
    ) -> None:
        super().__init__(components)
        self.guidance = guidance
        self.max_sequence_length = max_sequence_length
        self._t5_cache: dict[tuple, torch.Tensor] = {}
        self.text_encoder_2.eval()  # frozen: no dropout (see `train`)
        self._check_fill_channels()

    def _check_fill_channels(self) -> None:
        """The transformer must read noisy latents, masked-image latents and the folded mask."""
        latent_tokens = self.vae.config.latent_channels * PATCH * PATCH
        mask_tokens = self.vae_scale_factor**2 * PATCH * PATCH
        expected = 2 * latent_tokens + mask_tokens
        if self.transformer.config.in_channels != expected:
            raise ModelLoadError(
                f"the transformer reads {self.transformer.config.in_channels} channels; a Fill "
                f"model ({expected}: latents, masked-image latents, mask) is needed"
            )

    @property
    def size_multiple(self) -> int:
        return self.vae_scale_factor * PATCH

    @property
    def sampling_multiple(self) -> int:
        """Latents pack into 2x2 patches: no finer sizes than training's."""
        return self.size_multiple

    def encode_prompt(self, prompts: list[str]) -> Conditioning:
        """CLIP's pooled vector and T5's token states, padded as the stock pipeline pads."""
        clip_tokens = self.tokens(self.tokenizer, prompts, self.text_encoder.device)
        with torch.set_grad_enabled(self.train_text_encoder and torch.is_grad_enabled()):
            pooled = self.text_encoder(clip_tokens).pooler_output
        return {"encoder_hidden_states": self.t5_states(prompts), "pooled_projections": pooled}

    def train(self, mode: bool = True) -> "FluxFillFamily":
        """Train mode for everything but T5: it is frozen, so its dropout (0.1 in FLUX's
        config) would only add noise to the conditioning."""
        super().train(mode)
        self.text_encoder_2.eval()
        return self

    @torch.no_grad()
    def t5_states(self, prompts: list[str]) -> torch.Tensor:
        """T5's token states of `prompts`. T5 is frozen and the prompts are fixed, so they are
        computed once per (prompts, device, dtype), not every step: T5-XXL has ~4.7B
        parameters."""
        encoder = self.text_encoder_2
        key = (tuple(prompts), encoder.device, encoder.dtype)
        if key not in self._t5_cache:
            tokens = prompt_tokens(
                self.tokenizer_2, prompts, encoder.device, self.max_sequence_length
            )
            self._t5_cache = {key: encoder(tokens)[0]}
        return self._t5_cache[key]

    def latent_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Each latent cell's f x f pixel mask folded into f^2 channels: [B, f^2, h, w]."""
        f = self.vae_scale_factor
        b, _, height, width = mask.shape
        blocks = mask[:, 0].reshape(b, height // f, f, width // f, f).permute(0, 2, 4, 1, 3)
        return blocks.reshape(b, f * f, height // f, width // f)

    def add_noise(
        self, latents: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rectified flow at a uniformly drawn training sigma; the target is noise - latents."""
        steps = self.scheduler.config.num_train_timesteps
        index = torch.randint(0, steps, (latents.shape[0],))
        sigmas = self.scheduler.sigmas[index].to(latents.device, torch.float32)
        sigma = sigmas.view(-1, 1, 1, 1)
        noisy = ((1.0 - sigma) * latents.float() + sigma * noise.float()).to(latents.dtype)
        return noisy, sigmas * TIMESTEP_SCALE, noise.float() - latents.float()

    def denoise(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        mask: torch.Tensor,
        masked_image_latents: torch.Tensor,
        conditioning: Conditioning,
    ) -> torch.Tensor:
        """Pack, run the transformer, unpack: the velocity in the latents' spatial layout."""
        batch, _, height, width = noisy_latents.shape
        device = noisy_latents.device
        tokens = torch.cat([pack(noisy_latents), pack(masked_image_latents), pack(mask)], dim=2)
        guidance = None
        if self.transformer.config.guidance_embeds:
            guidance = torch.full((batch,), self.guidance, device=device, dtype=torch.float32)
        text = conditioning["encoder_hidden_states"]
        velocity = self.transformer(
            hidden_states=tokens.to(self.transformer.dtype),
            timestep=(timesteps / TIMESTEP_SCALE).to(noisy_latents.dtype),
            guidance=guidance,
            pooled_projections=conditioning["pooled_projections"],
            encoder_hidden_states=text,
            txt_ids=torch.zeros(text.shape[1], 3, device=device),
            img_ids=token_positions(height, width, device),
            return_dict=False,
        )[0]
        return unpack(velocity, height, width)

    @property
    def sampling_guidance_scale(self) -> float:
        """The distilled guidance the transformer was trained with."""
        return self.guidance

    def pipeline_arguments(self) -> dict:
        """T5 padding as in training."""
        return {"max_sequence_length": self.max_sequence_length}


class FluxFillInpainting(FluxFillFamily):
    """A pretrained FLUX.1 Fill checkpoint from the hub or a local folder."""

    def __init__(
        self,
        pretrained_model_name_or_path: str = "black-forest-labs/FLUX.1-Fill-dev",
        revision: str | None = None,
        variant: str | None = None,
        load_dtype: str = "bfloat16",
        guidance: float = 30.0,
        max_sequence_length: int = 512,
    ) -> None:
        """
        Args:
            pretrained_model_name_or_path: Hub id or local folder of a diffusers FLUX.1 Fill
                checkpoint (vae/, transformer/, text_encoder/, text_encoder_2/, tokenizer/,
                tokenizer_2/, scheduler/). The dev weights are gated: accept the licence on
                the hub first.
            revision: Hub revision (branch, tag or commit).
            variant: Weight file variant.
            load_dtype: torch dtype the weights are loaded in ("bfloat16", "float32"); fp32
                needs about 48 GB of host memory for the transformer alone.
            guidance: Distilled guidance strength fed to the transformer while training, and
                in sampling unless a sampling callback sets guidance_scale (FluxFillPipeline's
                default is 30).
            max_sequence_length: T5 prompt length in tokens, in training and sampling.
        """
        dtype = getattr(torch, load_dtype, None)
        if not isinstance(dtype, torch.dtype):
            raise ConfigError(
                f"FluxFillInpainting: load_dtype must name a torch dtype, got {load_dtype!r}"
            )
        components = load_components(
            FluxFillComponents, pretrained_model_name_or_path, revision, variant, dtype
        )
        with naming_the_checkpoint(pretrained_model_name_or_path):
            super().__init__(components, guidance, max_sequence_length)
