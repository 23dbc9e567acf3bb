"""The base-model plug-in interface: all that is specific to one inpainting model family.

`RealFillModule` only ever talks to an `InpaintingBaseModel`; a new family (SDXL inpainting, a
transformer fill model) is a new subclass chosen by `class_path` in the config, with no change
to the module, the data or the callbacks.

Latents cross this interface in their spatial layout, [B, C, h, w] at the VAE's resolution,
whatever the denoiser consumes: a family whose denoiser takes packed tokens (Flux) packs and
unpacks inside `denoise`, so the masked loss weights latent cells the same way for every family.

A family declares its components (a dataclass, one field per diffusers checkpoint subfolder), its
stock pipeline, its denoiser and the components that carry LoRA adapters; the base class derives
from that the adapters, their optimizer groups, the LoRA file and the sampling pipeline (see
docs/adding-a-base-model.md).
"""

import dataclasses
import math
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline
from peft import LoraConfig
from torch import nn
from transformers import PreTrainedModel

from realfill.modules.loading import scheduler_from_name
from realfill.modules.lora import LoraSettings
from realfill.modules.lora_io import AdaptedComponent, LoraKeys, load_adapters, save_adapters

Conditioning = dict[str, torch.Tensor]

PIPELINE_SIZE_MULTIPLE = 8
"""The SD and SDXL inpainting pipelines refuse sides that are not a multiple of 8 px."""

STATIC_SHAPES = {"dynamic": False}
"""torch.compile specializes every graph to its shapes. Its default turns a frame dynamic when
the same code meets a second shape, and training and sampling run the same denoiser code at
different shapes (batch, latent size, timesteps): compiled after training, sampling got a
dynamic-shape graph (symbolic sizes: about 3x the compile time on a CPU, generic kernels). Each
shape a run uses is fixed, so it is compiled once for it."""


def prompt_tokens(
    tokenizer, prompts: list[str], device: torch.device, max_length: int | None = None
) -> torch.Tensor:
    """Token ids of `prompts`, padded and truncated to `max_length` (default the tokenizer's
    `model_max_length`) as the stock pipelines pad them."""
    return tokenizer(
        prompts,
        padding="max_length",
        max_length=max_length or tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(device)


class InpaintingBaseModel(nn.Module, ABC):
    """A pretrained text-to-image inpainting model, its frozen parts and its LoRA adapters.

    A family is built from its components dataclass: each field becomes an attribute of the same
    (diffusers) name, every weight frozen until `add_lora` adds the adapters.
    """

    pipeline_class: type[DiffusionPipeline]
    """The family's stock diffusers inpainting pipeline: `pipeline` builds it over these
    components, and its `save_lora_weights` writes the LoRA file (`load_lora_weights` reads it)."""

    pipeline_settings: Mapping[str, Any] = {}
    """Arguments of `pipeline_class` besides the components (e.g. no safety checker)."""

    denoiser_name: str
    """The component that predicts noise or velocity: "unet", "transformer"."""

    adapted: Mapping[str, LoraKeys]
    """The components that carry LoRA adapters, by name, and how their adapter keys are saved:
    the denoiser (`denoiser_name`, first: adapters are drawn in this order) and the text
    encoders adapted when `LoraSettings.train_text_encoder` is on."""

    vae: nn.Module
    """The image autoencoder (a diffusers `AutoencoderKL`): `encoder` maps pixels to latents."""

    token_cache_size: int = 8
    """Prompt batches whose token ids `tokens` keeps on their device."""

    sampling_scheduler: str = "DDPMScheduler"
    """The diffusers scheduler sampling uses when the sampling settings name none."""

    def __init__(self, components: object) -> None:
        """
        Args:
            components: The family's components dataclass (a `scheduler` field among them: the
                training schedule).
        """
        super().__init__()
        self.component_names = tuple(field.name for field in dataclasses.fields(components))
        for name in self.component_names:
            setattr(self, name, getattr(components, name))
        self.requires_grad_(False)
        self.train_text_encoder = False
        self._token_cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._sampling_calls: dict[tuple[str, str | None], Callable] = {}

    def tokens(
        self,
        tokenizer,
        prompts: list[str],
        device: torch.device,
        max_length: int | None = None,
    ) -> torch.Tensor:
        """`prompt_tokens`, kept on the device for the next call: the training prompts are
        fixed, and a blocking host-to-device copy each step would make the host wait for the
        GPU to drain before it launches the text encoder."""
        cache = self._token_cache
        key = (id(tokenizer), tuple(prompts), str(device), max_length)
        if key in cache:
            cache.move_to_end(key)
        else:
            cache[key] = prompt_tokens(tokenizer, prompts, device, max_length)
            if len(cache) > self.token_cache_size:
                cache.popitem(last=False)
        return cache[key]

    @property
    @abstractmethod
    def size_multiple(self) -> int:
        """Image sides must be a multiple of this (VAE factor times denoiser downsampling)."""

    @property
    def sampling_multiple(self) -> int:
        """Sampled image sides must be a multiple of this: a whole number of latent cells and of
        the pipeline's 8 px. Finer than `size_multiple`, which training crops keep: a UNet takes
        any latent size at sampling (its upsamplers follow the skip connections' sizes)."""
        return math.lcm(self.vae_scale_factor, PIPELINE_SIZE_MULTIPLE)

    @abstractmethod
    def encode_prompt(self, prompts: list[str]) -> Conditioning:
        """Text conditioning for a batch of prompts (one row per prompt)."""

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell along each side (the VAE's downsampling)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Scaled latents of images in [-1, 1], sampled from the VAE posterior (no gradient),
        shifted first by the VAE's `shift_factor` where it has one (Flux)."""
        latents = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist.sample()
        shift = getattr(self.vae.config, "shift_factor", None)
        if shift is not None:
            latents = latents - shift
        return latents * self.vae.config.scaling_factor

    @abstractmethod
    def latent_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """The pixel mask (1 = to generate) at latent resolution, as the stock pipeline makes it.

        Spatial, [B, K, h, w]: K = 1 for the SD UNets, the 8x8 pixel blocks for Flux Fill.
        """

    @abstractmethod
    def add_noise(
        self, latents: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw training timesteps; return (noisy latents, timesteps, regression target).

        The noising is computed in fp32 (in bf16 small noise levels round away); the noisy
        latents come back in the latents' dtype, the target in fp32."""

    def sample_conditioning(
        self, conditioning: Conditioning, batch: Mapping[str, torch.Tensor]
    ) -> Conditioning:
        """Add per-sample conditioning read from the training batch; by default none.

        The batch is `SceneDataModule`'s: besides the pixels it holds each sample's
        `original_size` and `crop_top_left` (SDXL's size and crop micro-conditioning).
        """
        return conditioning

    @property
    def sampling_guidance_scale(self) -> float:
        """The guidance sampling uses when the sampling settings give none: 1, classifier-free
        guidance off, as in the paper."""
        return 1.0

    def pipeline_arguments(self) -> dict:
        """Extra keyword arguments of the pipeline call that make it sample as it was trained."""
        return {}

    @abstractmethod
    def denoise(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        mask: torch.Tensor,
        masked_image_latents: torch.Tensor,
        conditioning: Conditioning,
    ) -> torch.Tensor:
        """The denoiser's prediction, in the (spatial) layout of `noisy_latents`."""

    def pipeline(self, scheduler: str | None = None) -> DiffusionPipeline:
        """A stock diffusers inpainting pipeline over these (adapted) components, sampling with
        `scheduler` (default `sampling_scheduler`)."""
        return self.stock_pipeline(scheduler or self.sampling_scheduler)

    def stock_pipeline(
        self, scheduler: str, pipeline_class: type[DiffusionPipeline] | None = None
    ) -> DiffusionPipeline:
        """`pipeline`, with the diffusers scheduler class named (over the training schedule):
        `pipeline_class` (default the family's) over every component and `pipeline_settings`."""
        components = {name: getattr(self, name) for name in self.component_names}
        components["scheduler"] = scheduler_from_name(scheduler, self.scheduler)
        return (pipeline_class or self.pipeline_class)(**components, **self.pipeline_settings)

    @property
    def denoiser(self) -> nn.Module:
        """The diffusers model that predicts noise or velocity (a UNet or a transformer)."""
        return getattr(self, self.denoiser_name)

    def lora_config(self, name: str, config: LoraConfig) -> LoraConfig:
        """The adapters of the component `name`: `config`, unless the family never uses a
        layer's output (an adapter there would never train, and DDP stops on it)."""
        return config

    def add_lora(self, settings: LoraSettings) -> None:
        """Add trainable LoRA adapters to the frozen model: to the denoiser's
        `denoiser_target_modules`, and with `train_text_encoder` to the other `adapted`
        components' `text_encoder_target_modules`. They are held in fp32."""
        self.train_text_encoder = settings.train_text_encoder
        for name in self.adapted_components(trained_only=True):
            targets = (
                settings.denoiser_target_modules
                if name == self.denoiser_name
                else settings.text_encoder_target_modules
            )
            getattr(self, name).add_adapter(self.lora_config(name, settings.peft_config(targets)))
        self.trainable_to_fp32()

    def adapted_components(self, trained_only: bool) -> dict[str, AdaptedComponent]:
        """The modules that carry adapters (`trained_only`) or may carry them, by name."""
        return {
            name: AdaptedComponent(getattr(self, name), keys)
            for name, keys in self.adapted.items()
            if name == self.denoiser_name or self.train_text_encoder or not trained_only
        }

    def save_lora(self, directory: Path) -> None:
        """Write the adapters in the diffusers LoRA format that `load_lora_weights` reads."""
        save_adapters(self.pipeline_class, directory, self.adapted_components(True))

    def load_lora(self, directory: Path) -> None:
        """Load adapters written by `save_lora` into this model's (already added) adapters."""
        load_adapters(directory, self.adapted_components(False))

    def trainable_parameter_groups(self, denoiser_lr: float, text_encoder_lr: float) -> list[dict]:
        """Optimizer parameter groups of the LoRA weights: the denoiser's, and the text
        encoders' (if any train) at their own learning rate."""
        trainable = {
            name: [p for p in getattr(self, name).parameters() if p.requires_grad]
            for name in self.adapted
        }
        groups = [{"params": trainable.pop(self.denoiser_name), "lr": denoiser_lr}]
        text_params = [p for params in trainable.values() for p in params]
        if text_params:
            groups.append({"params": text_params, "lr": text_encoder_lr})
        return groups

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in the backward pass instead of keeping them: the denoiser's
        and those of every text encoder with trainable adapters (call after `add_lora`). Less
        memory for about a third more compute."""
        self.denoiser.enable_gradient_checkpointing()
        for encoder in self.trained_text_encoders():
            enable = getattr(encoder, "activation_checkpointing_enable", None)  # transformers 5
            (enable or encoder.gradient_checkpointing_enable)({"use_reentrant": False})

    def compile_denoiser(
        self, backend: str = "inductor", regional: bool = False, mode: str | None = None
    ) -> None:
        """torch.compile the denoiser in place: whole, or only the blocks it repeats (diffusers'
        `compile_repeated_blocks`), which gives their fused kernels after a fraction of the
        compile time. `mode` is torch.compile's (e.g. "reduce-overhead": CUDA graphs). Every
        compilation here is static (`STATIC_SHAPES`)."""
        if regional:
            self.denoiser.compile_repeated_blocks(backend=backend, mode=mode, **STATIC_SHAPES)
        else:
            self.denoiser.compile(backend=backend, mode=mode, **STATIC_SHAPES)

    def compile_encoders(self, backend: str = "inductor", mode: str | None = None) -> None:
        """torch.compile, in place, what encodes a training batch besides the denoiser: the VAE
        encoder (two full-resolution encodings per sample, most of a step's FLOPs, memory-bound
        GroupNorms that fusion removes) and every text encoder with trainable adapters (a few
        thousand small kernels per step, launched by the host)."""
        self.vae.encoder.compile(backend=backend, mode=mode, **STATIC_SHAPES)
        for encoder in self.trained_text_encoders():
            encoder.compile(backend=backend, mode=mode, **STATIC_SHAPES)

    def sampling_denoiser_call(
        self, backend: str = "inductor", mode: str | None = None
    ) -> Callable:
        """The denoiser's call under torch.compile for sampling, made once per (backend, mode)
        and kept: its graphs (no gradients, adapters folded in) differ from training's, and the
        periodic samples and the selection reuse them instead of compiling again."""
        key = (backend, mode)
        if key not in self._sampling_calls:
            self._sampling_calls[key] = torch.compile(
                self.denoiser._call_impl, backend=backend, mode=mode, **STATIC_SHAPES
            )
        return self._sampling_calls[key]

    def trained_text_encoders(self) -> list[PreTrainedModel]:
        """The text encoders (transformers models) that carry trainable adapters."""
        return [
            module
            for module in self.children()
            if isinstance(module, PreTrainedModel)
            and any(p.requires_grad for p in module.parameters())
        ]

    def trainable_to_fp32(self) -> None:
        """Hold trainable (LoRA) weights in fp32 whatever the base weights' dtype."""
        for param in self.parameters():
            if param.requires_grad:
                param.data = param.data.float()

    def cast_frozen(self, dtype: torch.dtype) -> None:
        """Store frozen weights in the compute dtype; trainable (LoRA) weights stay fp32."""
        for param in self.parameters():
            param.data = param.data.to(dtype if not param.requires_grad else torch.float32)

    @staticmethod
    def select_conditioning(conditioning: Conditioning, index: torch.Tensor) -> Conditioning:
        """Rows of a prompt batch picked per sample (e.g. prompt or empty prompt)."""
        return {key: value[index] for key, value in conditioning.items()}
