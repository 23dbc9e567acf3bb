"""LoRA settings shared by every base-model plug-in."""

from dataclasses import dataclass, field
from typing import Literal

from peft import LoraConfig

from realfill.errors import ConfigError

LORA_INITS = ("default", "gaussian")
"""The adapter initialisations `LoraSettings.init` accepts."""


@dataclass
class LoraSettings:
    """Where LoRA adapters go and how big they are."""

    rank: int = 8
    """LoRA rank r: the width of the low-rank update."""
    alpha: float = 16.0
    """LoRA alpha: the update is scaled by alpha / rank."""
    dropout: float = 0.1
    """Dropout on the LoRA input during training."""
    denoiser_target_modules: list[str] = field(
        default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"]
    )
    """Module names in the denoiser (UNet or transformer) that get an adapter."""
    text_encoder_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "out_proj"]
    )
    """Module names in the text encoder(s) that get an adapter."""
    train_text_encoder: bool = True
    """Also adapt the text encoder(s); off trains the denoiser only."""
    init: Literal["default", "gaussian"] = "default"
    """Initialisation of the adapters, B = 0 either way (the fit starts at the base model):
    "default" is peft's (A Kaiming-uniform, as the public RealFill implementation whose learning
    rates the configs copy); "gaussian" draws A ~ N(0, 1/rank), as diffusers' DreamBooth-LoRA
    scripts do: at SD 2's widths every update is several times larger at the same learning
    rate. peft's other schemes (PiSSA, OLoRA, orthogonal, ...) change the base weights or start
    away from them, which a LoRA file loaded onto the stock model cannot reproduce."""

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ConfigError(f"model.lora.rank must be >= 1, got {self.rank}")
        if self.alpha <= 0:
            raise ConfigError(f"model.lora.alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.lora.dropout must be in [0, 1), got {self.dropout}")
        if self.init not in LORA_INITS:
            raise ConfigError(f"model.lora.init must be one of {LORA_INITS}, got {self.init!r}")

    def peft_config(self, target_modules: list[str]) -> LoraConfig:
        """The peft config for one component; B = 0, so the adapted model starts as the base."""
        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            init_lora_weights=True if self.init == "default" else self.init,
            target_modules=list(target_modules),
        )
