"""Checkpoints that also keep the steps of a fit stopped with Ctrl-C or SIGTERM."""

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from realfill import layout
from realfill.callbacks.run_config import written_by_realfill
from realfill.io import check_replaceable, write_manifest

CHECKPOINT_PATTERNS = ("*.ckpt",)
"""What a run's checkpoint folder held before manifests."""


def beside_a_run_config(folder: Path) -> bool:
    """Whether a checkpoint folder without a manifest is a fit's: the folder it is in holds
    the config.yaml a fit wrote (the run dir)."""
    config = layout.run_config(folder.parent)
    try:
        return config.is_file() and written_by_realfill(config.read_text("utf-8"), folder.parent)
    except (OSError, UnicodeDecodeError):
        return False


def check_checkpoint_folder(folder: Path) -> None:
    """Refuse (`OutputError` naming the file), before training, a checkpoint folder holding a
    file, at any depth, that realfill cannot prove it wrote (see `realfill.io.foreign_file`):
    Lightning would overwrite a `last.ckpt` of someone else's."""
    advice = "move it or choose another run dir (trainer.default_root_dir), where a fit writes "
    check_replaceable(folder, CHECKPOINT_PATTERNS, beside_a_run_config, advice + "its checkpoints")


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

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Refuse, before training, a checkpoint folder holding files that are not realfill's
        (`check_checkpoint_folder`)."""
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and self.dirpath is not None:
            check_checkpoint_folder(Path(self.dirpath))

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        """Save, then record every file of the folder in its manifest: the next fit into this
        run dir may write there again."""
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            write_manifest(Path(filepath).parent)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.save_on_exception = stopped_on_request(exception)
        super().on_exception(trainer, pl_module, exception)
