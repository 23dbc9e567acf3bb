"""The base-model plug-in interface: all that is specific to one inpainting model family.

`RealFillModule` only ever talks to an `InpaintingBaseModel`; a new family (SDXL inpainting, a
transformer fill model) is a new subclass chosen by `class_path` in the config, with no change
to the module, the data or the callbacks.
"""

from abc import ABC, abstractmethod
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from torch import nn

from realfill.modules.lora import LoraSettings

Conditioning = dict[str, torch.Tensor]


class InpaintingBaseModel(nn.Module, ABC):
    """A pretrained text-to-image inpainting model, its frozen parts and its LoRA adapters."""

    @property
    @abstractmethod
    def size_multiple(self) -> int:
        """Image sides must be a multiple of this (VAE factor times denoiser downsampling)."""

    @abstractmethod
    def add_lora(self, settings: LoraSettings) -> None:
        """Freeze every base weight and add trainable LoRA adapters."""

    @abstractmethod
    def encode_prompt(self, prompts: list[str]) -> Conditioning:
        """Text conditioning for a batch of prompts (one row per prompt)."""

    @abstractmethod
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Scaled latents of images in [-1, 1], sampled from the VAE posterior (no gradient)."""

    @abstractmethod
    def latent_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """The pixel mask (1 = to generate) at latent resolution, as the stock pipeline makes it."""

    @abstractmethod
    def add_noise(
        self, latents: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw training timesteps; return (noisy latents, timesteps, regression target)."""

    @abstractmethod
    def denoise(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        mask: torch.Tensor,
        masked_image_latents: torch.Tensor,
        conditioning: Conditioning,
    ) -> torch.Tensor:
        """The denoiser's prediction, in the layout of the latents."""

    @abstractmethod
    def pipeline(self, scheduler: str) -> DiffusionPipeline:
        """A stock diffusers inpainting pipeline over these (adapted) components."""

    @abstractmethod
    def save_lora(self, directory: Path) -> None:
        """Write the adapters in the diffusers LoRA format that `load_lora_weights` reads."""

    @abstractmethod
    def load_lora(self, directory: Path) -> None:
        """Load adapters written by `save_lora` into this model's (already added) adapters."""

    @abstractmethod
    def trainable_parameter_groups(self, denoiser_lr: float, text_encoder_lr: float) -> list[dict]:
        """Optimizer parameter groups of the LoRA weights, one learning rate per component."""

    def cast_frozen(self, dtype: torch.dtype) -> None:
        """Store frozen weights in the compute dtype; trainable (LoRA) weights stay fp32."""
        for param in self.parameters():
            param.data = param.data.to(dtype if not param.requires_grad else torch.float32)

    @staticmethod
    def select_conditioning(conditioning: Conditioning, index: torch.Tensor) -> Conditioning:
        """Rows of a prompt batch picked per sample (e.g. prompt or empty prompt)."""
        return {key: value[index] for key, value in conditioning.items()}
