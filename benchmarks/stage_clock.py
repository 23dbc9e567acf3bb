"""`StageClock`: wall-clock marks of a fit, for benchmarks/end_to_end.py."""

import time

import lightning as L
import torch


class StageClock(L.Callback):
    """Wall-clock marks of a fit: training start, steady-state steps, training and selection end.

    List it after CompleteTarget: its `on_train_end` then runs once the candidates are ranked.
    """

    def __init__(self, warmup_steps: int = 20) -> None:
        self.warmup_steps = warmup_steps
        self.marks: dict[str, float] = {}
        self.steady_steps = 0

    def mark(self, name: str) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.marks[name] = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.mark("train_start")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step == self.warmup_steps:
            self.mark("steady_start")
        if trainer.global_step == trainer.max_steps:
            self.mark("train_end")
            self.steady_steps = trainer.global_step - self.warmup_steps

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.mark("selection_end")
