"""What one optimizer step logs and how it advances the warm-up, with accumulation and under
16-mixed loss scaling."""

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.plugins.precision import MixedPrecision

from realfill.data import SceneDataModule
from realfill.modules import OptimizationSettings, RealFillModule


class RecordingLogger(Logger):
    """Keeps every logged metrics dict, with its step."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[tuple[int, dict]] = []

    name = "recording"
    version = 0

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self.logged.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass


def fit(module: RealFillModule, scene_dir: Path, root: Path, **trainer_settings) -> L.Trainer:
    data = SceneDataModule(
        str(scene_dir), resolution=32, batch_size=2, num_workers=0, samples_per_epoch=16
    )
    trainer = L.Trainer(
        accelerator="cpu",
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        log_every_n_steps=1,
        **trainer_settings,
    )
    trainer.fit(module, datamodule=data)
    return trainer


def record_micro_batch_losses(module: RealFillModule, monkeypatch, scale=lambda i: 1.0) -> list:
    """Wrap `masked_loss` to keep each micro-batch's loss; `scale(i)` multiplies the i-th."""
    losses = []
    masked_loss = module.masked_loss

    def recorded(batch):
        loss = masked_loss(batch) * scale(len(losses))
        losses.append(loss.item())
        return loss

    monkeypatch.setattr(module, "masked_loss", recorded)
    return losses


def test_the_logged_loss_of_an_accumulated_step_is_its_micro_batches_mean(
    tiny_base, scene_dir, tmp_path, monkeypatch
):
    module = RealFillModule(tiny_base)
    losses = record_micro_batch_losses(module, monkeypatch)
    logger = RecordingLogger()
    fit(module, scene_dir, tmp_path, max_steps=2, accumulate_grad_batches=3, logger=logger)
    logged = [metrics["train/loss"] for _, metrics in logger.logged if "train/loss" in metrics]
    assert len(losses) == 6
    expected = [sum(losses[:3]) / 3, sum(losses[3:]) / 3]
    assert logged == pytest.approx(expected, rel=1e-5)


def test_steps_the_loss_scaler_skips_do_not_count_as_warm_up(
    tiny_base, scene_dir, tmp_path, monkeypatch
):
    """Under 16-mixed, a step whose scaled gradients overflow is skipped: the warm-up waits."""
    module = RealFillModule(tiny_base, optimization=OptimizationSettings(warmup_steps=10))
    overflowing = 2
    record_micro_batch_losses(module, monkeypatch, lambda i: 1e38 if i < overflowing else 1.0)
    precision = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
    trainer = fit(module, scene_dir, tmp_path, max_steps=5, plugins=[precision], logger=False)
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert trainer.global_step == 5
    assert scheduler.last_epoch == 5 - overflowing
    rate = module.optimization.denoiser_learning_rate
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(rate * 4 / 10)
