"""One progress bar over the whole fit, counted in optimizer steps (and one over a sample run)."""

import sys

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm, convert_inf

COMPILING_NOTE = "compiling the first step: minutes, seconds with a warm torch.compile cache"
"""Shown beside the bar until the first step of a fit that torch.compiles is done: on a GPU
it takes 2 to 4.5 minutes cold, and a bar stuck at 0 would look hung."""


class StepProgressBar(TQDMProgressBar):
    """The fit's progress as optimizer steps out of `trainer.max_steps`, with the loss beside it;
    `realfill.sample`'s as candidates drawn ("Sampling").

    Lightning's default bars restart every epoch and, in a fit bounded by `max_steps`, read
    "Epoch 0/-2"; the epochs of a few-image scene mean nothing. This bar runs once from the
    first step (or the resumed one) to the last, and is closed there, so that the end-of-fit
    sampling and ranking show their own bars below it.
    """

    def __init__(self, refresh_rate: int = 1, metrics_every_n_steps: int | None = None) -> None:
        """
        Args:
            refresh_rate: Redraw the bar every this many optimizer steps.
            metrics_every_n_steps: Update the loss beside the bar every this many optimizer
                steps; default the trainer's `log_every_n_steps`, when the logger reads it
                anyway. Reading it makes the host wait for the GPU to finish the step, instead
                of queueing the next one meanwhile.
        """
        super().__init__(refresh_rate=refresh_rate)
        self.metrics_every_n_steps = metrics_every_n_steps

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning's `init_train_tqdm`, drawn at once with its total and starting step (not
        first as "0/?"), saying so when the first step compiles (`COMPILING_NOTE`)."""
        total = convert_inf(trainer.estimated_stepping_batches)
        self.train_progress_bar = self.run_bar(self.train_description, total, trainer.global_step)
        if getattr(pl_module, "compiles_for_training", False):
            self.train_progress_bar.set_postfix_str(COMPILING_NOTE)

    def run_bar(
        self, description: str, total: int | None, initial: int = 0, unit: str = "it"
    ) -> Tqdm:
        """A bar over a whole run (Lightning's settings for its own bars), drawn at once with
        its total."""
        return Tqdm(
            desc=description,
            total=total,
            initial=initial,
            unit=unit,
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            bar_format=self.BAR_FORMAT,
        )

    def on_train_epoch_start(self, trainer: L.Trainer, *_) -> None:
        """The bar spans every epoch: nothing restarts."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_) -> None:
        bar = self.train_progress_bar
        step = trainer.global_step
        if bar.disable or step == bar.n:  # an accumulation micro-batch: no optimizer step yet
            return
        if bar.postfix == COMPILING_NOTE:  # the first step, compiled, is done
            bar.set_postfix_str("", refresh=False)
        if step % self.refresh_rate == 0 or step == bar.total:
            bar.n = step
            every = self.metrics_every_n_steps or trainer.log_every_n_steps
            if (every and step % every == 0) or step == bar.total:
                bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.refresh()
        if step == bar.total:  # done before the end-of-fit sampling shows its own bars
            bar.close()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The epoch's end is not the bar's."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        """The logged progress-bar metrics, without the logger's version number (the run dir
        is printed at the end)."""
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics

    @property
    def predict_description(self) -> str:
        return "Sampling"

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """One bar over this process's candidates (the module's `num_candidates`), not
        Lightning's batches of a "DataLoader 0"."""
        total = getattr(pl_module, "num_candidates", None)
        self.predict_progress_bar = self.run_bar(self.predict_description, total, unit="candidate")

    def on_predict_batch_start(self, *_) -> None:
        """Nothing restarts: the bar spans the whole prediction."""

    def on_predict_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: list, *_
    ) -> None:
        """Count the batch's candidates (one output each)."""
        self.predict_progress_bar.update(len(outputs))
