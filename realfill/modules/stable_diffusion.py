"""Stable Diffusion 1.x / 2.x inpainting (9-channel UNet) as a base-model plug-in."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    StableDiffusionInpaintPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextModel, CLIPTokenizer

from realfill.errors import ModelLoadError
from realfill.modules.base_model import Conditioning, InpaintingBaseModel
from realfill.modules.loading import load_components, naming_the_checkpoint
from realfill.modules.loading import (
    scheduler_class as scheduler_class,
)  # realfill.callbacks' import
from realfill.modules.lora_io import TEXT_ENCODER_KEYS, UNET_KEYS


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

    pipeline_class = StableDiffusionInpaintPipeline
    pipeline_settings = {
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }
    denoiser_name = "unet"
    adapted = {"unet": UNET_KEYS, "text_encoder": TEXT_ENCODER_KEYS}

    def __init__(self, components: StableDiffusionComponents) -> None:
        if components.unet.config.in_channels != 9:
            raise ModelLoadError(
                f"the UNet has {components.unet.config.in_channels} input channels; "
                "an inpainting model (9 channels: latents, mask, masked-image latents) is needed"
            )
        super().__init__(components)

    @property
    def size_multiple(self) -> int:
        return self.vae_scale_factor * 2 ** (len(self.unet.config.down_block_types) - 1)

    @property
    def prediction_type(self) -> str:
        return self.scheduler.config.prediction_type

    def encode_prompt(self, prompts: list[str]) -> Conditioning:
        tokens = self.tokens(self.tokenizer, prompts, self.text_encoder.device)
        with torch.set_grad_enabled(self.train_text_encoder and torch.is_grad_enabled()):
            hidden = self.text_encoder(tokens)[0]
        return {"encoder_hidden_states": hidden}

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
        components = load_components(
            StableDiffusionComponents, pretrained_model_name_or_path, revision, variant
        )
        with naming_the_checkpoint(pretrained_model_name_or_path):
            super().__init__(components)
