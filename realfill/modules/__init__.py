"""The LightningModule and the base-model plug-ins it is given."""

from realfill.modules.base_model import InpaintingBaseModel
from realfill.modules.flux_fill import FluxFillInpainting
from realfill.modules.lora import LoraSettings
from realfill.modules.realfill import RealFillModule
from realfill.modules.sdxl import StableDiffusionXLInpainting
from realfill.modules.settings import CompileSettings, OptimizationSettings
from realfill.modules.stable_diffusion import StableDiffusionInpainting
from realfill.modules.tiny import TinyStableDiffusionInpainting
from realfill.modules.tiny_flux import TinyFluxFillInpainting
from realfill.modules.tiny_sdxl import TinyStableDiffusionXLInpainting

__all__ = [
    "CompileSettings",
    "FluxFillInpainting",
    "InpaintingBaseModel",
    "LoraSettings",
    "OptimizationSettings",
    "RealFillModule",
    "StableDiffusionInpainting",
    "StableDiffusionXLInpainting",
    "TinyFluxFillInpainting",
    "TinyStableDiffusionInpainting",
    "TinyStableDiffusionXLInpainting",
]
