"""Lightning callbacks (LoRA export, completion and selection, periodic sampling, W&B reports,
the fit's progress bar, checkpoints) and the pure functions they use."""

from realfill.callbacks.checkpoint import InterruptibleCheckpoint
from realfill.callbacks.completion import CompleteTarget
from realfill.callbacks.lora import SaveLoRA
from realfill.callbacks.matchers import LoFTRMatcher, Matcher, SIFTMatcher
from realfill.callbacks.periodic import PeriodicSampling
from realfill.callbacks.progress import StepProgressBar
from realfill.callbacks.wandb import WandbReport

__all__ = [
    "CompleteTarget",
    "InterruptibleCheckpoint",
    "LoFTRMatcher",
    "Matcher",
    "PeriodicSampling",
    "SIFTMatcher",
    "SaveLoRA",
    "StepProgressBar",
    "WandbReport",
]
