"""LoRA settings shared by every base-model plug-in."""

from dataclasses import dataclass, field

from peft import LoraConfig

from realfill.errors import ConfigError


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

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ConfigError(f"model.lora.rank must be >= 1, got {self.rank}")
        if self.alpha <= 0:
            raise ConfigError(f"model.lora.alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.lora.dropout must be in [0, 1), got {self.dropout}")

    def peft_config(self, target_modules: list[str]) -> LoraConfig:
        """The peft config for one component, with Gaussian init of A so B = 0 keeps the base."""
        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            init_lora_weights="gaussian",
            target_modules=list(target_modules),
        )
