"""Lightning callbacks: LoRA export, completion, compositing."""

from realfill.callbacks.completion import CompleteTarget
from realfill.callbacks.lora import SaveLoRA

__all__ = ["CompleteTarget", "SaveLoRA"]
