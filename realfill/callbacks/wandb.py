"""Send a run's results to Weights & Biases: the resolved config, the ranked completions, the LoRA.

Loss and learning-rate curves need nothing from here: `WandbLogger` logs what the module logs,
and `LearningRateMonitor` adds the learning rates. Lightning itself only logs the module's
`save_hyperparameters()` (no trainer, data or callback settings), and the run's
`SaveRunConfig` writes `config.yaml` without telling any logger, so `WandbReport` puts the
whole resolved config into the W&B run config.

Nothing here waits on the network. With `WANDB_MODE=offline` the run lands in the run's
`wandb/offline-run-*` folder for a later `wandb sync`, the files of its artifacts and tables in
wandb's data folder (`WANDB_DATA_DIR`); with `WANDB_MODE=disabled` nothing is
logged and no artifact is staged. Online, files and artifacts upload in the background and the
process waits for them only when it exits.
"""

import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger

from realfill import layout
from realfill.callbacks.completion import CompleteTarget
from realfill.callbacks.lora import SaveLoRA
from realfill.callbacks.records import first_callback
from realfill.callbacks.run_config import SaveRunConfig
from realfill.errors import ConfigError
from realfill.io import MANIFEST_FILENAME
from realfill.modules.realfill import RealFillModule
from realfill.selection import Selection


class QuietWandbLogger(WandbLogger):
    """Lightning's `WandbLogger` without two wandb warnings a user can do nothing about: it
    passes wandb the deprecated `anonymous` setting even when unset ("has no effect"), and it
    starts the run before the run dir exists, which wandb reports as a missing git root."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)

    @property
    def experiment(self) -> Any:
        if self._experiment is None and self._save_dir:
            Path(self._save_dir).mkdir(parents=True, exist_ok=True)
        return super().experiment


def wandb_loggers(trainer: L.Trainer) -> list[WandbLogger]:
    """The trainer's W&B loggers, in order (usually none or one)."""
    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


class WandbReport(L.Callback):
    """Logs the run's outcome to every `WandbLogger` in `trainer.loggers` (rank zero only).

    When fit starts: the resolved config (`SaveRunConfig`'s, what `<run dir>/config.yaml`
    holds) goes into the W&B run config under `config_key`. When fit ends: the ranked contact
    sheet, the top-ranked completions (captioned "#rank seed S: N matches"), a table of every
    candidate with its seed, score, rank, file and image, the best score
    (`<key_prefix>/best_score`, a sweep metric), and the LoRA folder as an artifact of type
    `artifact_type` named `<artifact_type>-<run id>`.

    It takes the selection from `CompleteTarget` and the LoRA folder from `SaveLoRA`, in
    memory, found among the trainer's callbacks; both are made when training ends, before any
    `on_fit_end`. A fit of no training step writes its LoRA in `on_fit_end`, so list this
    callback after `SaveLoRA` (as configs/logger/wandb.yaml does). What is missing (e.g. no
    CompleteTarget in the config) is skipped with a warning.
    """

    def __init__(
        self,
        config_key: str = "cli",
        artifact_type: str = "lora",
        key_prefix: str = "completions",
        completions_dirname: str | None = None,
        lora_dirname: str | None = None,
        config_filename: str | None = None,
    ) -> None:
        """
        Args:
            config_key: W&B config key the resolved config is nested under.
            artifact_type: Type of the LoRA artifact; its name is `<artifact_type>-<run id>`.
            key_prefix: Prefix of the W&B keys of the completions.
            completions_dirname: Retired: the completions come from CompleteTarget (its
                `dirname` says where they are written).
            lora_dirname: Retired: the LoRA comes from SaveLoRA (its `dirname`).
            config_filename: Retired: the config comes from the run's config callback.
        """
        retired = {
            "completions_dirname": completions_dirname,
            "lora_dirname": lora_dirname,
            "config_filename": config_filename,
        }
        given = [name for name, value in retired.items() if value is not None]
        if given:
            raise ConfigError(
                f"WandbReport: {', '.join(given)} is no longer read: the report takes what "
                "CompleteTarget, SaveLoRA and the run's config made (set their dirname instead)"
            )
        self.config_key = config_key
        self.artifact_type = artifact_type
        self.key_prefix = key_prefix
        self._config: dict[str, Any] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        """Log the resolved config of the run."""
        if not trainer.is_global_zero:
            return
        loggers = wandb_loggers(trainer)
        if not loggers:
            warnings.warn(
                "WandbReport: no WandbLogger in trainer.loggers, nothing to report", stacklevel=2
            )
            return
        run_config = first_callback(trainer.callbacks, SaveRunConfig)
        if run_config is None:
            warnings.warn(
                "WandbReport: no resolved config (is the fit run by realfill.fit?), not logged",
                stacklevel=2,
            )
            return
        self._config = run_config.resolved(trainer)
        for logger in loggers:
            logger.experiment.config.update({self.config_key: self._config}, allow_val_change=True)

    def on_fit_end(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        if not trainer.is_global_zero:
            return
        complete = first_callback(trainer.callbacks, CompleteTarget)
        save_lora = first_callback(trainer.callbacks, SaveLoRA)
        selection = complete.selection if complete else None
        lora_dir = save_lora.saved_to if save_lora else None
        for logger in wandb_loggers(trainer):
            if selection is None:
                warnings.warn(
                    "WandbReport: no selection (is the config's selection: null?); "
                    "completions not logged",
                    stacklevel=2,
                )
            else:
                self.log_completions(logger, selection, trainer.global_step)
            self.log_lora(logger, lora_dir, trainer.global_step)

    def log_completions(self, logger: WandbLogger, selection: Selection, step: int) -> None:
        """The ranked contact sheet, the top-ranked completions, a table of every candidate
        and the best score."""
        prefix = self.key_prefix
        sheet = selection.out_dir / layout.CONTACT_SHEET_FILENAME
        logger.log_image(key=f"{prefix}/contact_sheet", images=[str(sheet)], step=step)
        if selection.ranked:
            logger.log_image(
                key=f"{prefix}/ranked",
                images=[str(selection.path(candidate)) for candidate in selection.ranked],
                caption=[candidate.caption for candidate in selection.ranked],
                step=step,
            )
        import wandb  # on first use, as Lightning does: importing wandb takes about a second

        columns = ["seed", "score", "rank", "file", "image"]
        rows = [
            [c.seed, c.score, c.rank, c.file, wandb.Image(str(selection.path(c)))]
            for c in selection.candidates
        ]
        logger.log_table(key=f"{prefix}/candidates", columns=columns, data=rows, step=step)
        logger.log_metrics({f"{prefix}/best_score": selection.best.score}, step=step)

    def log_lora(self, logger: WandbLogger, lora_dir: Path | None, step: int) -> None:
        """The LoRA folder as an artifact; its metadata holds the model section of the config
        (base model and LoRA settings: what loading it needs)."""
        if lora_dir is None:
            warnings.warn(
                "WandbReport: no LoRA (is SaveLoRA in trainer.callbacks, before WandbReport?); "
                "not logged",
                stacklevel=2,
            )
            return
        run = logger.experiment
        if getattr(run, "disabled", False):
            return  # staging a copy of the LoRA that is never uploaded would only waste disk
        import wandb

        artifact = wandb.Artifact(
            f"{self.artifact_type}-{run.id}",
            type=self.artifact_type,
            metadata={"global_step": step, "model": self._config.get("model")},
        )
        for path in sorted(Path(lora_dir).iterdir()):  # not the ownership manifest
            if path.is_file() and path.name != MANIFEST_FILENAME:
                artifact.add_file(str(path), name=path.name)
        run.log_artifact(artifact)
