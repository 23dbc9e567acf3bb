"""The fit's progress bar counts optimizer steps to max_steps, across epochs."""

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from realfill.callbacks import StepProgressBar


class Linear(L.LightningModule):
    """The smallest trainable module: one weight, a loss logged to the bar."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = (self.weight * batch).square().mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def fit(
    tmp_path,
    max_steps: int,
    accumulation: int,
    ckpt_path: str | None = None,
    bar: StepProgressBar | None = None,
    log_every_n_steps: int = 50,
    module: L.LightningModule | None = None,
) -> StepProgressBar:
    bar = bar or StepProgressBar()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        accumulate_grad_batches=accumulation,
        callbacks=[bar],
        logger=False,
        default_root_dir=tmp_path,
        enable_model_summary=False,
        log_every_n_steps=log_every_n_steps,
    )
    loader = DataLoader(torch.randn(6, 1), batch_size=2)  # epochs of 3 batches
    trainer.fit(module or Linear(), loader, ckpt_path=ckpt_path)
    return bar


@pytest.mark.parametrize("accumulation", [1, 2])
def test_one_bar_counts_optimizer_steps_across_epochs(tmp_path, capsys, accumulation):
    bar = fit(tmp_path, max_steps=7, accumulation=accumulation)
    assert (bar.train_progress_bar.n, bar.train_progress_bar.total) == (7, 7)
    shown = capsys.readouterr().out
    assert "Training" in shown and "7/7" in shown and "train/loss" in shown
    assert "Epoch" not in shown and "8/7" not in shown
    assert "0/?" not in shown and "v_num" not in shown  # drawn with its total; no version


def test_a_resumed_fit_starts_the_bar_at_its_step(tmp_path, capsys):
    fit(tmp_path, max_steps=3, accumulation=1)
    (checkpoint,) = (tmp_path / "checkpoints").glob("*.ckpt")
    capsys.readouterr()
    bar = fit(tmp_path, max_steps=5, accumulation=1, ckpt_path=str(checkpoint))
    assert (bar.train_progress_bar.initial, bar.train_progress_bar.n) == (3, 5)
    assert "0/5" not in capsys.readouterr().out


class MetricsReadAt(StepProgressBar):
    """Records the optimizer step at each read of the logged metrics."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        self.steps.append(trainer.global_step)
        return super().get_metrics(trainer, pl_module)


def test_the_loss_is_read_when_the_logger_reads_it_not_every_step(tmp_path, capsys):
    """Reading a logged tensor waits for the GPU: every step, the host could not queue the
    next step while the GPU runs this one."""
    bar = fit(tmp_path, max_steps=7, accumulation=1, bar=MetricsReadAt(), log_every_n_steps=3)
    assert bar.steps == [3, 6, 7]  # and the last step's loss
    assert bar.train_progress_bar.n == 7


class CompiledLinear(Linear):
    """Says, as RealFillModule does, that its first step compiles."""

    compiles_for_training = True


def test_the_bar_says_the_first_step_compiles_until_it_is_done(tmp_path, capsys):
    bar = fit(tmp_path, max_steps=3, accumulation=1, module=CompiledLinear())
    assert "compiling the first step" in capsys.readouterr().out
    assert "compiling" not in bar.train_progress_bar.postfix

    fit(tmp_path / "plain", max_steps=3, accumulation=1)
    assert "compiling" not in capsys.readouterr().out
