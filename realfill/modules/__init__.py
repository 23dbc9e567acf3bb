"""The LightningModule and the base-model plug-ins it is given."""

from realfill.modules.base_model import InpaintingBaseModel
from realfill.modules.lora import LoraSettings
from realfill.modules.realfill import RealFillModule
from realfill.modules.stable_diffusion import StableDiffusionInpainting
from realfill.modules.tiny import TinyStableDiffusionInpainting

__all__ = [
    "InpaintingBaseModel",
    "LoraSettings",
    "RealFillModule",
    "StableDiffusionInpainting",
    "TinyStableDiffusionInpainting",
]
