"""Stable Diffusion XL inpainting (9-channel UNet, two text encoders) as a base-model plug-in.

What SDXL adds to the SD family: a second text encoder (`text_encoder_2`, with a projection
whose pooled output conditions the UNet), the size and crop micro-conditioning ("time ids":
original size, crop top-left and target size of each training crop), and a VAE that overflows
in fp16 (kept in fp32 here, or replaced by the fp16-fix VAE).
"""

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DiffusionPipeline, StableDiffusionXLInpaintPipeline
from diffusers.pipelines.stable_diffusion_xl.pipeline_output import (
    StableDiffusionXLPipelineOutput,
)
from peft import LoraConfig
from safetensors import SafetensorError
from transformers import CLIPTextModelWithProjection, CLIPTokenizer

from realfill.errors import ModelLoadError
from realfill.modules.base_model import PIPELINE_SIZE_MULTIPLE, Conditioning
from realfill.modules.loading import load_components, load_failure, naming_the_checkpoint
from realfill.modules.lora_io import TEXT_ENCODER_KEYS, load_adapters
from realfill.modules.stable_diffusion import StableDiffusionComponents, StableDiffusionFamily

TIME_ID_COUNT = 6
"""original (h, w) + crop (top, left) + target (h, w): the inpainting model's time ids."""


@dataclass
class StableDiffusionXLComponents(StableDiffusionComponents):
    """The SD components plus SDXL's second text encoder (with projection) and its tokenizer."""

    text_encoder_2: CLIPTextModelWithProjection | None = None
    tokenizer_2: CLIPTokenizer | None = None


def time_ids(
    original_size: torch.Tensor, crop_top_left: torch.Tensor, target_size: tuple[int, int]
) -> torch.Tensor:
    """SDXL's [B, 6] micro-conditioning: original size, crop top-left, target size (h, w)."""
    target = torch.tensor(target_size, device=original_size.device).expand_as(original_size)
    return torch.cat([original_size, crop_top_left, target], dim=1).float()


class Fp32VaeInpaintPipeline(StableDiffusionXLInpaintPipeline):
    """The stock SDXL inpainting pipeline over a VAE stored in fp32 (`vae_in_fp32`), which it
    encodes and decodes with in fp32 and leaves in fp32, whatever the prompt dtype.

    The stock pipeline, with the VAE config's `force_upcast`, casts the VAE to the prompt dtype
    after encoding and upcasts it for decoding from fp16 only: under bf16 it would decode in
    bf16 and leave the VAE in bf16.
    """

    def _encode_vae_image(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The stock encoding of an fp32 copy (the stock one casts the VAE back to the image's
        dtype after); latents in the image's dtype."""
        return super()._encode_vae_image(image.float(), generator).to(image.dtype)

    def __call__(self, *args, **kwargs) -> StableDiffusionXLPipelineOutput | tuple:
        """The stock call, the latents cast to fp32 where the VAE starts decoding them."""
        vae = self.vae
        entry = vae.post_quant_conv if vae.post_quant_conv is not None else vae.decoder
        hook = entry.register_forward_pre_hook(lambda _, inputs: (inputs[0].float(), *inputs[1:]))
        try:
            return super().__call__(*args, **kwargs)
        finally:
            hook.remove()


class StableDiffusionXLFamily(StableDiffusionFamily):
    """Shared implementation for any SDXL inpainting model, whatever its source."""

    pipeline_class = StableDiffusionXLInpaintPipeline
    pipeline_settings = {
        "requires_aesthetics_score": False,
        "force_zeros_for_empty_prompt": True,
        "add_watermarker": False,
    }
    adapted = {**StableDiffusionFamily.adapted, "text_encoder_2": TEXT_ENCODER_KEYS}

    def __init__(self, components: StableDiffusionXLComponents, vae_in_fp32: bool) -> None:
        if components.text_encoder_2 is None or components.tokenizer_2 is None:
            raise ModelLoadError("an SDXL model needs text_encoder_2 and tokenizer_2")
        super().__init__(components)
        self.vae_in_fp32 = vae_in_fp32
        self._check_time_embedding()

    def _check_time_embedding(self) -> None:
        """The UNet must take 6 time ids (not the refiner's aesthetic score) and the pooled text."""
        config = self.unet.config
        if config.addition_embed_type != "text_time":
            raise ModelLoadError("the UNet has no SDXL text/time embedding (addition_embed_type)")
        expected = self.unet.add_embedding.linear_1.in_features
        passed = config.addition_time_embed_dim * TIME_ID_COUNT + self.pooled_width
        if expected != passed:
            raise ModelLoadError(
                f"the UNet's added embedding takes {expected} features, not {passed} "
                "(6 size/crop time ids + pooled text): is this an SDXL inpainting model?"
            )

    @property
    def size_multiple(self) -> int:
        return math.lcm(super().size_multiple, PIPELINE_SIZE_MULTIPLE)

    @property
    def pooled_width(self) -> int:
        """Width of the pooled text embedding (text_encoder_2's projection)."""
        return self.text_encoder_2.config.projection_dim

    def idle_layer_pattern(self) -> str:
        """Regex of the first text encoder's last layer, whose output SDXL never uses (it
        reads that encoder's penultimate hidden states)."""
        return rf"layers\.{self.text_encoder.config.num_hidden_layers - 1}\."

    def lora_config(self, name: str, config: LoraConfig) -> LoraConfig:
        """No adapter on the first text encoder's last layer: SDXL reads that encoder's
        penultimate hidden states, so one there would never train, and Lightning's plain `ddp`
        stops at the first step on a parameter without a gradient. The second encoder keeps its
        last layer's: the pooled text embedding comes out of it."""
        if name != "text_encoder":
            return config
        return dataclasses.replace(config, exclude_modules=rf"(.*\.)?{self.idle_layer_pattern()}.*")

    def load_lora(self, directory: Path) -> None:
        """As the base class's, leaving out the first text encoder's last-layer weights that
        LoRAs saved before `lora_config` hold: adapters that never trained (zero)."""
        idle = re.compile(rf"text_encoder\.(.*\.)?{self.idle_layer_pattern()}").match
        load_adapters(directory, self.adapted_components(False), idle)

    def encode_prompt(self, prompts: list[str]) -> Conditioning:
        """Penultimate hidden states of both encoders, concatenated, and the pooled projection."""
        hidden_states, pooled = [], None
        pairs = ((self.tokenizer, self.text_encoder), (self.tokenizer_2, self.text_encoder_2))
        with torch.set_grad_enabled(self.train_text_encoder and torch.is_grad_enabled()):
            for tokenizer, encoder in pairs:
                tokens = self.tokens(tokenizer, prompts, encoder.device)
                output = encoder(tokens, output_hidden_states=True)
                hidden_states.append(output.hidden_states[-2])
                pooled = output[0]
        return {"encoder_hidden_states": torch.cat(hidden_states, dim=-1), "text_embeds": pooled}

    def sample_conditioning(
        self, conditioning: Conditioning, batch: Mapping[str, torch.Tensor]
    ) -> Conditioning:
        """Add the time ids of each sample's actual crop (see `SceneDataset.__getitem__`)."""
        missing = [key for key in ("original_size", "crop_top_left") if key not in batch]
        if missing:
            raise KeyError(f"SDXL training needs the batch's {missing} (SceneDataModule gives it)")
        ids = time_ids(
            batch["original_size"], batch["crop_top_left"], tuple(batch["pixels"].shape[-2:])
        )
        return {**conditioning, "time_ids": ids}

    def cast_frozen(self, dtype: torch.dtype) -> None:
        super().cast_frozen(dtype)
        if self.vae_in_fp32:
            self._vae_to_fp32()

    def _vae_to_fp32(self) -> None:
        """Store the VAE in fp32 (the stock pipeline casts it to the prompt dtype after using
        it with `force_upcast`, so this is redone before training uses it)."""
        for param in self.vae.parameters():
            if param.dtype != torch.float32:
                param.data = param.data.float()

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """VAE latents; in fp32 (autocast off) when `vae_in_fp32`, as the model's denoiser dtype."""
        if not self.vae_in_fp32:
            return super().encode_images(pixels).to(self.unet.dtype)
        self._vae_to_fp32()
        with torch.autocast(pixels.device.type, enabled=False):
            latents = self.vae.encode(pixels.float()).latent_dist.sample()
        return (latents * self.vae.config.scaling_factor).to(self.unet.dtype)

    def denoise(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        mask: torch.Tensor,
        masked_image_latents: torch.Tensor,
        conditioning: Conditioning,
    ) -> torch.Tensor:
        added = {"text_embeds": conditioning["text_embeds"], "time_ids": conditioning["time_ids"]}
        unet_conditioning = {
            "encoder_hidden_states": conditioning["encoder_hidden_states"],
            "added_cond_kwargs": added,
        }
        return super().denoise(
            noisy_latents, timesteps, mask, masked_image_latents, unet_conditioning
        )

    def stock_pipeline(
        self, scheduler: str, pipeline_class: type[DiffusionPipeline] | None = None
    ) -> StableDiffusionXLInpaintPipeline:
        """The stock pipeline over these components; with `vae_in_fp32`, its subclass that
        encodes and decodes with the VAE in fp32 (see `Fp32VaeInpaintPipeline`)."""
        if self.vae_in_fp32:
            self._vae_to_fp32()
            pipeline_class = pipeline_class or Fp32VaeInpaintPipeline
        return super().stock_pipeline(scheduler, pipeline_class)

    def pipeline_arguments(self) -> dict:
        """Start from pure noise (the SDXL pipeline's default strength 0.9999 keeps a trace of
        the target's hole content, which RealFill never trains on)."""
        return {"strength": 1.0}


def load_vae(source: str) -> AutoencoderKL:
    """Load a VAE that replaces the checkpoint's, with a one-line error that names it."""
    try:
        return AutoencoderKL.from_pretrained(source)
    except (OSError, ValueError, SafetensorError) as error:
        raise ModelLoadError(
            f"cannot load the VAE {source!r} ({load_failure(error)}). Point "
            "model.base_model.init_args.vae_name_or_path at a local diffusers VAE folder, or set "
            "it to null to use the checkpoint's own vae/"
        ) from error


class StableDiffusionXLInpainting(StableDiffusionXLFamily):
    """A pretrained SDXL inpainting checkpoint from the hub or a local folder."""

    def __init__(
        self,
        pretrained_model_name_or_path: str = "diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
        revision: str | None = None,
        variant: str | None = None,
        vae_name_or_path: str | None = None,
        vae_in_fp32: bool = True,
    ) -> None:
        """
        Args:
            pretrained_model_name_or_path: Hub id or local folder of a diffusers SDXL
                inpainting checkpoint (vae/, unet/, text_encoder/, text_encoder_2/, tokenizer/,
                tokenizer_2/, scheduler/).
            revision: Hub revision (branch, tag or commit).
            variant: Weight file variant, e.g. "fp16".
            vae_name_or_path: Load the VAE from this hub id or folder instead of the
                checkpoint's vae/, e.g. madebyollin/sdxl-vae-fp16-fix, which is safe in fp16.
            vae_in_fp32: Keep the VAE in fp32 whatever the trainer precision (the stock SDXL
                VAE overflows in fp16); false stores it in the compute dtype like the rest,
                which wants the fp16-fix VAE under 16-mixed.
        """
        given = {"vae": load_vae(vae_name_or_path)} if vae_name_or_path else {}
        components = load_components(
            StableDiffusionXLComponents, pretrained_model_name_or_path, revision, variant, **given
        )
        with naming_the_checkpoint(pretrained_model_name_or_path):
            super().__init__(components, vae_in_fp32)
