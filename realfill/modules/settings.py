"""`RealFillModule`'s compile and optimization settings, grouped as `LoraSettings` is: each
field is documented once, here, and `python -m realfill.fit --help` shows it."""

import dataclasses
from dataclasses import dataclass
from typing import Literal

from realfill.errors import ConfigError

CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
"""torch.compile modes that record CUDA graphs."""


@dataclass(frozen=True)
class CompileSettings:
    """What torch.compile compiles, and how."""

    denoiser: bool = False
    """torch.compile the denoiser when fit starts: faster steps after a compilation of a few
    minutes (docs/performance.md); the same loss."""
    regional: bool = False
    """With `denoiser` on, compile only the denoiser's repeated blocks (diffusers' regional
    compilation: its transformer blocks, adapters included) instead of the whole denoiser: a
    fraction of the compile time."""
    encoders: bool = False
    """torch.compile the VAE encoder and the trained text encoder(s) when fit starts: the VAE
    encoding is most of a step's arithmetic."""
    sampling: bool = False
    """torch.compile the whole denoiser for sampling as well (periodic samples, the selection):
    its own inference graph, compiled at the first sampling call and kept for the next;
    otherwise sampling runs eagerly."""
    backend: str = "inductor"
    """torch.compile backend ("inductor" generates fused kernels)."""
    mode: str | None = None
    """torch.compile mode, for training and sampling alike: null (the default),
    "reduce-overhead" (CUDA graphs: the host launches a step's kernels at once; not with
    gradient accumulation), "max-autotune" (CUDA graphs, and searches kernel configurations: a
    much longer compile)."""

    @property
    def for_training(self) -> bool:
        """Whether fit's first step compiles."""
        return self.denoiser or self.encoders

    @property
    def uses_cuda_graphs(self) -> bool:
        """Whether the mode records CUDA graphs (whose outputs the next step reuses)."""
        return self.mode in CUDA_GRAPH_MODES


@dataclass(frozen=True)
class OptimizationSettings:
    """The optimizer, its learning rates and the warm-up."""

    denoiser_learning_rate: float = 2e-4
    """AdamW learning rate of the denoiser (UNet or transformer) LoRA."""
    text_encoder_learning_rate: float = 4e-5
    """AdamW learning rate of the text-encoder LoRA."""
    weight_decay: float = 1e-2
    """AdamW weight decay."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    adam_epsilon: float = 1e-8
    """AdamW epsilon."""
    warmup_steps: int = 100
    """Linear warm-up steps, then a constant learning rate."""
    optimizer: Literal["adamw", "adamw8bit"] = "adamw"
    """The optimizer: "adamw", or "adamw8bit" (bitsandbytes, GPU only), its state in 8 bits for
    small cards."""

    def __post_init__(self) -> None:
        """Refuse, in one line, settings that would train nonsense without an error: a negative
        learning rate (gradient ascent) or warm-up."""
        for name in ("denoiser_learning_rate", "text_encoder_learning_rate"):
            rate = getattr(self, name)
            if rate < 0:
                raise ConfigError(f"model.optimization.{name} must be >= 0, got {rate}")
        if self.warmup_steps < 0:
            raise ConfigError(
                f"model.optimization.warmup_steps must be >= 0, got {self.warmup_steps}"
            )


def moved_settings() -> dict[str, str]:
    """The flat `model.*` keys of earlier versions, each with the key that replaced it."""
    moved = {f"compile_{f.name}": f"compile.{f.name}" for f in dataclasses.fields(CompileSettings)}
    moved |= {f.name: f"optimization.{f.name}" for f in dataclasses.fields(OptimizationSettings)}
    return {f"model.{old}": f"model.{new}" for old, new in moved.items()}


def migrate_flat_settings(config: dict) -> list[str]:
    """Move, in place, the flat `model.*` keys of earlier versions' configs (a run dir's
    `config.yaml` written before the settings were grouped) to their groups; return the old
    keys found. A key already set in its group keeps the group's value."""
    model = config.get("model")
    if not isinstance(model, dict):
        return []
    found = []
    for old, new in moved_settings().items():
        key = old.removeprefix("model.")
        if key not in model:
            continue
        group, _, field = new.removeprefix("model.").partition(".")
        value = model.pop(key)
        settings = model.setdefault(group, {})
        if isinstance(settings, dict):
            settings.setdefault(field, value)
        found.append(old)
    return found
