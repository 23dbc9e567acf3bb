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

import json
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.loggers import WandbLogger

from realfill import layout
from realfill.modules.realfill import RealFillModule
from realfill.selection.writing import ranked_caption


def wandb_loggers(trainer: L.Trainer) -> list[WandbLogger]:
    """The trainer's W&B loggers, in order (usually none or one)."""
    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


def ranked_captions(records: list[dict[str, Any]]) -> list[str]:
    """Captions of scores.json records, as on the ranked contact sheet."""
    return [ranked_caption(r["rank"], r["seed"], r["score"]) for r in records]


def read_yaml(path: Path) -> dict[str, Any] | None:
    """A YAML mapping from `path`, or None with a warning when the file is missing."""
    if not path.is_file():
        warnings.warn(f"WandbReport: {path} not found, not logged", stacklevel=2)
        return None
    return yaml.safe_load(path.read_text())


def read_records(path: Path) -> list[dict[str, Any]] | None:
    """The candidates of a scores.json in rank order, or None with a warning when missing."""
    if not path.is_file():
        warnings.warn(
            f"WandbReport: {path} not found (is CompleteTarget in trainer.callbacks?); "
            "completions not logged",
            stacklevel=2,
        )
        return None
    return sorted(json.loads(path.read_text()), key=lambda record: record["rank"])


class WandbReport(L.Callback):
    """Logs the run's outcome to every `WandbLogger` in `trainer.loggers` (rank zero only).

    When fit starts: the resolved `<run dir>/config.yaml` (written by the CLI) goes into the
    W&B run config under `config_key`. When fit ends: the ranked contact sheet, the top-ranked
    completions (captioned "#rank seed S: N matches"), a table of every candidate with its
    seed, score, rank, file and image, the best score (`<key_prefix>/best_score`, a sweep
    metric), and the LoRA folder as an artifact of type `artifact_type` named
    `<artifact_type>-<run id>`.

    `CompleteTarget` writes its files when training ends, before any `on_fit_end`; Lightning
    calls `on_fit_end` in the order of `trainer.callbacks`, so this callback must come after
    `SaveLoRA`, whose LoRA it reads. A missing file (e.g. no CompleteTarget in the config) is
    skipped with a warning.
    """

    def __init__(
        self,
        completions_dirname: str = layout.COMPLETIONS_DIRNAME,
        lora_dirname: str = layout.LORA_DIRNAME,
        config_filename: str = layout.CONFIG_FILENAME,
        config_key: str = "cli",
        artifact_type: str = "lora",
        key_prefix: str = "completions",
    ) -> None:
        """
        Args:
            completions_dirname: Folder under the run dir with CompleteTarget's output.
            lora_dirname: Folder under the run dir with SaveLoRA's output.
            config_filename: The resolved config the CLI writes into the run dir.
            config_key: W&B config key the resolved config is nested under.
            artifact_type: Type of the LoRA artifact; its name is `<artifact_type>-<run id>`.
            key_prefix: Prefix of the W&B keys of the completions.
        """
        self.completions_dirname = completions_dirname
        self.lora_dirname = lora_dirname
        self.config_filename = config_filename
        self.config_key = config_key
        self.artifact_type = artifact_type
        self.key_prefix = key_prefix

    def on_fit_start(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        """Log the resolved config, which the CLI's config callback (placed first among the
        callbacks) has just written in its own `on_fit_start`."""
        if not trainer.is_global_zero:
            return
        loggers = wandb_loggers(trainer)
        if not loggers:
            warnings.warn(
                "WandbReport: no WandbLogger in trainer.loggers, nothing to report", stacklevel=2
            )
            return
        config = read_yaml(Path(trainer.default_root_dir) / self.config_filename)
        if config is None:
            return
        for logger in loggers:
            logger.experiment.config.update({self.config_key: config}, allow_val_change=True)

    def on_fit_end(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        if not trainer.is_global_zero:
            return
        run_dir = Path(trainer.default_root_dir)
        for logger in wandb_loggers(trainer):
            self.log_completions(logger, run_dir / self.completions_dirname, trainer.global_step)
            self.log_lora(logger, run_dir, trainer.global_step)

    def log_completions(self, logger: WandbLogger, completions: Path, step: int) -> None:
        """The ranked contact sheet, the top-ranked completions, a table of every candidate
        and the best score."""
        prefix = self.key_prefix
        sheet = completions / layout.CONTACT_SHEET_FILENAME
        if sheet.is_file():
            logger.log_image(key=f"{prefix}/contact_sheet", images=[str(sheet)], step=step)
        else:
            warnings.warn(f"WandbReport: {sheet} not found, not logged", stacklevel=2)
        records = read_records(completions / layout.SCORES_FILENAME)
        if not records:
            return
        kept = len(list((completions / layout.RANKED_DIRNAME).glob("*.png")))
        top = records[:kept]
        if top:
            logger.log_image(
                key=f"{prefix}/ranked",
                images=[str(completions / r["file"]) for r in top],
                caption=ranked_captions(top),
                step=step,
            )
        import wandb  # on first use, as Lightning does: importing wandb takes about a second

        columns = ["seed", "score", "rank", "file", "image"]
        rows = [
            [r["seed"], r["score"], r["rank"], r["file"], wandb.Image(str(completions / r["file"]))]
            for r in records
        ]
        logger.log_table(key=f"{prefix}/candidates", columns=columns, data=rows, step=step)
        logger.log_metrics({f"{prefix}/best_score": records[0]["score"]}, step=step)

    def log_lora(self, logger: WandbLogger, run_dir: Path, step: int) -> None:
        """The LoRA folder as an artifact; its metadata holds the model section of the config
        (base model and LoRA settings: what loading it needs)."""
        lora_dir = run_dir / self.lora_dirname
        if not lora_dir.is_dir() or not any(lora_dir.iterdir()):
            warnings.warn(
                f"WandbReport: no LoRA in {lora_dir} (is SaveLoRA in trainer.callbacks, before "
                "WandbReport?); not logged",
                stacklevel=2,
            )
            return
        run = logger.experiment
        if getattr(run, "disabled", False):
            return  # staging a copy of the LoRA that is never uploaded would only waste disk
        import wandb

        config = read_yaml(run_dir / self.config_filename) or {}
        artifact = wandb.Artifact(
            f"{self.artifact_type}-{run.id}",
            type=self.artifact_type,
            metadata={"global_step": step, "model": config.get("model")},
        )
        artifact.add_dir(str(lora_dir))
        run.log_artifact(artifact)
