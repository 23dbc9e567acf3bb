"""The optimizer choice: AdamW, or bitsandbytes' 8-bit AdamW to save optimizer memory."""

import importlib.util

import torch

from realfill.errors import RealFillError

OPTIMIZERS = ("adamw", "adamw8bit")


def check_optimizer(name: str) -> None:
    """Fail early, in one line, on an unknown optimizer or a missing optional dependency."""
    if name not in OPTIMIZERS:
        raise RealFillError(
            f"model.optimization.optimizer={name!r}: choose one of {', '.join(OPTIMIZERS)}"
        )
    if name == "adamw8bit" and importlib.util.find_spec("bitsandbytes") is None:
        raise RealFillError(
            "model.optimization.optimizer=adamw8bit needs bitsandbytes (a CUDA GPU): "
            'pip install -e ".[bnb]", or use model.optimization.optimizer=adamw'
        )


def build_optimizer(name: str, groups: list[dict], **adam) -> torch.optim.Optimizer:
    """AdamW over the parameter groups; `adam` holds weight_decay, betas and eps."""
    check_optimizer(name)
    if name == "adamw8bit":
        import bitsandbytes

        return bitsandbytes.optim.AdamW8bit(groups, **adam)
    return torch.optim.AdamW(groups, **adam)
