"""`StageClock`: wall-clock marks of a fit, for benchmarks/end_to_end.py."""

import os
import time
from pathlib import Path

import lightning as L
import torch

from realfill.io import write_json

MARKS_FILE = "end_to_end_marks.json"
"""Written at every mark, to `$OUT` (or the run dir): a run cut off at its time limit keeps
the marks it reached, e.g. the steady step time while its selection was still running."""


class StageClock(L.Callback):
    """Wall-clock marks of a fit: training start, steady-state steps, training and selection end.

    List it after SaveLoRA, which fit puts the end-of-fit selection (`CompleteTarget`) after:
    its `on_train_end` then runs once the candidates are ranked.
    """

    def __init__(self, warmup_steps: int = 20) -> None:
        self.warmup_steps = warmup_steps
        self.marks: dict[str, float] = {}
        self.steady_steps = 0
        self.out: Path | None = None

    def mark(self, name: str) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.marks[name] = time.perf_counter()
        if self.out is not None:
            write_json(self.progress(), self.out / MARKS_FILE)

    def progress(self) -> dict:
        """The marks so far, in seconds since training started."""
        start = self.marks["train_start"]
        return {
            "seconds_since_train_start": {k: t - start for k, t in self.marks.items()},
            "warmup_steps": self.warmup_steps,
            "steady_steps": self.steady_steps,
        }

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.out = Path(os.environ.get("OUT") or trainer.default_root_dir)
        self.mark("train_start")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step  # repeats over accumulated batches: mark each step once
        if step == self.warmup_steps and "steady_start" not in self.marks:
            self.mark("steady_start")
        if step == trainer.max_steps and "train_end" not in self.marks:
            self.steady_steps = step - self.warmup_steps
            self.mark("train_end")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.mark("selection_end")
