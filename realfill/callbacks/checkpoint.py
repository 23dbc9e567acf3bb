"""Checkpoints that also keep the steps of a fit stopped with Ctrl-C or SIGTERM."""

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException


def stopped_on_request(exception: BaseException) -> bool:
    """Whether the fit was stopped on purpose (Ctrl-C, or SIGTERM: a job scheduler's
    pre-emption or `kill`) rather than by a crash. Lightning raises either on every process."""
    return isinstance(exception, KeyboardInterrupt | SIGTERMException)


class InterruptibleCheckpoint(ModelCheckpoint):
    """Lightning's `ModelCheckpoint` (same arguments) that also saves, as `last.ckpt` and by
    step, when the fit is stopped with Ctrl-C or SIGTERM: `--ckpt_path=<run
    dir>/checkpoints/last.ckpt` resumes from the step reached, not from the last periodic save.

    A crash saves nothing, unlike `save_on_exception`: under DDP a crash stops one process, and
    a save there would wait at its barrier for the others forever. A stop reaches them all.
    """

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.save_on_exception = stopped_on_request(exception)
        super().on_exception(trainer, pl_module, exception)
