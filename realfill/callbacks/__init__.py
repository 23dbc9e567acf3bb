"""Lightning callbacks (LoRA export, completion and selection, periodic sampling, W&B reports,
the fit's progress bar, checkpoints, the run's config); the work they do is in `realfill.selection`.

The matchers are re-exported from `realfill.selection` so that configs written for earlier
versions (`class_path: realfill.callbacks.SIFTMatcher`) keep working."""

from realfill.callbacks.checkpoint import InterruptibleCheckpoint
from realfill.callbacks.completion import CompleteTarget
from realfill.callbacks.lora import SaveLoRA
from realfill.callbacks.periodic import PeriodicSampling
from realfill.callbacks.progress import StepProgressBar
from realfill.callbacks.run_config import SaveRunConfig
from realfill.callbacks.wandb import QuietWandbLogger, WandbReport
from realfill.selection.matchers import LoFTRMatcher, Matcher, SIFTMatcher  # old config paths

__all__ = [
    "CompleteTarget",
    "InterruptibleCheckpoint",
    "LoFTRMatcher",
    "Matcher",
    "PeriodicSampling",
    "QuietWandbLogger",
    "SIFTMatcher",
    "SaveLoRA",
    "SaveRunConfig",
    "StepProgressBar",
    "WandbReport",
]
