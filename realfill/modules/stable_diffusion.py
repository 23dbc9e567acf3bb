"""Stable Diffusion 1.x / 2.x inpainting (9-channel UNet) as a base-model plug-in."""

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    StableDiffusionInpaintPipeline,
    UNet2DConditionModel,
)
from diffusers.loaders.lora_base import LoraBaseMixin
from diffusers.utils import (
    convert_state_dict_to_diffusers,
    convert_state_dict_to_peft,
    convert_unet_state_dict_to_peft,
)
from peft import LoraConfig
from transformers import CLIPTextModel, CLIPTokenizer

from realfill.errors import ModelLoadError
from realfill.modules.base_model import Conditioning, InpaintingBaseModel
from realfill.modules.loading import load_components, scheduler_from_name
from realfill.modules.loading import scheduler_class as scheduler_class  # callbacks import it
from realfill.modules.lora import LoraSettings
from realfill.modules.lora_io import AdaptedComponent, load_adapters, save_adapters


@dataclass
class StableDiffusionComponents:
    """The parts of a Stable Diffusion inpainting checkpoint that training and sampling use."""

    vae: AutoencoderKL
    unet: UNet2DConditionModel
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDPMScheduler


class StableDiffusionFamily(InpaintingBaseModel):
    """Shared implementation for any SD 1.x/2.x inpainting model, whatever its source."""

    lora_pipeline_class: type[LoraBaseMixin] = StableDiffusionInpaintPipeline
    """The stock pipeline whose `save_lora_weights` writes (and `load_lora_weights` reads) the
    LoRA file."""

    def __init__(self, components: StableDiffusionComponents) -> None:
        super().__init__()
        if components.unet.config.in_channels != 9:
            raise ModelLoadError(
                f"the UNet has {components.unet.config.in_channels} input channels; "
                "an inpainting model (9 channels: latents, mask, masked-image latents) is needed"
            )
        self.vae = components.vae
        self.unet = components.unet
        self.text_encoder = components.text_encoder
        self.tokenizer = components.tokenizer
        self.scheduler = components.scheduler
        self.vae.requires_grad_(False)
        self.unet.requires_grad_(False)
        self.text_encoder.requires_grad_(False)
        self.train_text_encoder = False

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        return self.vae_scale_factor * 2 ** (len(self.unet.config.down_block_types) - 1)

    @property
    def prediction_type(self) -> str:
        return self.scheduler.config.prediction_type

    @property
    def denoiser(self) -> UNet2DConditionModel:
        return self.unet

    def text_encoders(self) -> dict[str, torch.nn.Module]:
        """The text encoders by diffusers component name (SDXL adds `text_encoder_2`)."""
        return {"text_encoder": self.text_encoder}

    def add_lora(self, settings: LoraSettings) -> None:
        self.unet.add_adapter(settings.peft_config(settings.denoiser_target_modules))
        self.train_text_encoder = settings.train_text_encoder
        if settings.train_text_encoder:
            config = settings.peft_config(settings.text_encoder_target_modules)
            for name, encoder in self.text_encoders().items():
                encoder.add_adapter(self.text_encoder_lora_config(name, config))
        self.trainable_to_fp32()

    def text_encoder_lora_config(self, name: str, config: LoraConfig) -> LoraConfig:
        """The adapters of the text encoder `name`: `config`, unless the family never uses a
        layer's output (an adapter there would never train, and DDP stops on it)."""
        return config

    def encode_prompt(self, prompts: list[str]) -> Conditioning:
        tokens = self.tokens(self.tokenizer, prompts, self.text_encoder.device)
        with torch.set_grad_enabled(self.train_text_encoder and torch.is_grad_enabled()):
            hidden = self.text_encoder(tokens)[0]
        return {"encoder_hidden_states": hidden}

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = pixels.to(self.vae.dtype)
        latents = self.vae.encode(pixels).latent_dist.sample()
        return latents * self.vae.config.scaling_factor

    def latent_mask(self, mask: torch.Tensor) -> torch.Tensor:
        size = (mask.shape[-2] // self.vae_scale_factor, mask.shape[-1] // self.vae_scale_factor)
        return F.interpolate(mask, size=size)

    def add_noise(
        self, latents: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Noise at uniformly drawn training timesteps, computed in fp32 whatever the latents'
        dtype: the scheduler computes in its inputs' dtype, and in bf16 the noise level of the
        first timesteps rounds to 0 (192 distinct levels of 1000 remain)."""
        steps = self.scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (latents.shape[0],), device=latents.device)
        clean, noise = latents.float(), noise.float()
        noisy = self.scheduler.add_noise(clean, noise, timesteps).to(latents.dtype)
        if self.prediction_type == "epsilon":
            target = noise
        elif self.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(clean, noise, timesteps)
        else:
            raise ModelLoadError(
                f"scheduler prediction_type {self.prediction_type!r} is not supported "
                "(epsilon or v_prediction)"
            )
        return noisy, timesteps, target

    def denoise(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        mask: torch.Tensor,
        masked_image_latents: torch.Tensor,
        conditioning: Conditioning,
    ) -> torch.Tensor:
        model_input = torch.cat([noisy_latents, mask, masked_image_latents], dim=1)
        return self.unet(model_input, timesteps, **conditioning).sample

    def stock_pipeline(self, scheduler: str) -> StableDiffusionInpaintPipeline:
        pipe = StableDiffusionInpaintPipeline(
            vae=self.vae,
            text_encoder=self.text_encoder,
            tokenizer=self.tokenizer,
            unet=self.unet,
            scheduler=scheduler_from_name(scheduler, self.scheduler),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        return pipe

    def adapted_components(self, trained_only: bool) -> dict[str, AdaptedComponent]:
        """The modules that carry (or may carry) adapters, by diffusers component name."""
        components = {
            "unet": AdaptedComponent(
                self.unet, convert_state_dict_to_diffusers, convert_unet_state_dict_to_peft
            )
        }
        if self.train_text_encoder or not trained_only:
            for name, encoder in self.text_encoders().items():
                components[name] = AdaptedComponent(
                    encoder, convert_state_dict_to_diffusers, convert_state_dict_to_peft
                )
        return components

    def save_lora(self, directory: Path) -> None:
        save_adapters(self.lora_pipeline_class, directory, self.adapted_components(True))

    def load_lora(self, directory: Path) -> None:
        load_adapters(directory, self.adapted_components(False))

    def trainable_parameter_groups(self, denoiser_lr: float, text_encoder_lr: float) -> list[dict]:
        groups = [
            {"params": [p for p in self.unet.parameters() if p.requires_grad], "lr": denoiser_lr}
        ]
        text_params = [
            p
            for encoder in self.text_encoders().values()
            for p in encoder.parameters()
            if p.requires_grad
        ]
        if text_params:
            groups.append({"params": text_params, "lr": text_encoder_lr})
        return groups


class StableDiffusionInpainting(StableDiffusionFamily):
    """A pretrained SD 1.x/2.x inpainting checkpoint from the hub or a local folder."""

    def __init__(
        self,
        pretrained_model_name_or_path: str = "stabilityai/stable-diffusion-2-inpainting",
        revision: str | None = None,
        variant: str | None = None,
    ) -> None:
        """
        Args:
            pretrained_model_name_or_path: Hub id or local folder of a diffusers inpainting
                checkpoint (vae/, unet/, text_encoder/, tokenizer/, scheduler/).
            revision: Hub revision (branch, tag or commit).
            variant: Weight file variant, e.g. "fp16".
        """
        super().__init__(
            load_components(
                StableDiffusionComponents, pretrained_model_name_or_path, revision, variant
            )
        )
