"""Lightning callbacks (LoRA export, completion and selection) and the pure functions they use."""

from realfill.callbacks.completion import CompleteTarget
from realfill.callbacks.lora import SaveLoRA
from realfill.callbacks.matchers import LoFTRMatcher, Matcher, SIFTMatcher

__all__ = ["CompleteTarget", "LoFTRMatcher", "Matcher", "SIFTMatcher", "SaveLoRA"]
