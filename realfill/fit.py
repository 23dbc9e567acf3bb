"""`python -m realfill.fit --config configs/X.yaml [--section.key=value ...]`: fine-tune on a scene.

A LightningCLI that always fits. Every class in a config is given by `class_path`/`init_args`, so a
base model, a callback or a logger is swapped by editing YAML. Configs are merged first and
interpolated after (`omegaconf+`), so `${trainer.default_root_dir}` follows a command-line
override of the run dir and can be used from a stacked preset.
"""

from pathlib import Path

from lightning.pytorch import Trainer
from lightning.pytorch.cli import SaveConfigCallback

from realfill.cli import SceneCLI, run_cli
from realfill.errors import ConfigError
from realfill.modules.realfill import check_compile_mode, check_training_precision


class SaveRunConfig(SaveConfigCallback):
    """Writes the resolved config to `<run dir>/config.yaml`, the run's single record. The run
    dir and the scene are recorded as absolute paths, so that `realfill.sample --config
    <run dir>/config.yaml` finds them from any working directory."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.is_global_zero:
            run_dir = Path(trainer.default_root_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            config = self.config.clone()
            del config["ckpt_path"]
            config.trainer.default_root_dir = str(run_dir.resolve())
            config.data.scene_dir = str(Path(config.data.scene_dir).resolve())
            self.parser.save(config, run_dir / self.config_filename, overwrite=True)


CHECKPOINT_KEYWORDS = ("last", "best", "hpc", "registry")
"""`--ckpt_path` values that Lightning resolves itself rather than read as a file."""


def check_checkpoint_path(ckpt_path: str | None) -> None:
    """Refuse, before the model loads, a `--ckpt_path` that names no file."""
    if ckpt_path and ckpt_path not in CHECKPOINT_KEYWORDS and not Path(ckpt_path).is_file():
        raise ConfigError(f"{ckpt_path}: no such checkpoint file (--ckpt_path)")


class RealFillCLI(SceneCLI):
    """The fit command's CLI: `--ckpt_path` resumes a run."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="Resume from this checkpoint (e.g. <run dir>/checkpoints/last.ckpt).",
        )

    def before_instantiate_classes(self) -> None:
        """Check the scene, the precision and the compile settings before the (slow) base model
        loads."""
        super().before_instantiate_classes()
        config = self.config
        check_checkpoint_path(config.ckpt_path)
        check_training_precision(config.trainer.precision)
        check_compile_mode(config.model.compile_mode, config.trainer.accumulate_grad_batches)


def remove_empty_log_dirs(trainer: Trainer) -> None:
    """Remove the log folders a failed fit created but never wrote to (Lightning creates a
    logger's `version_N` before the callbacks' checks run): a refused fit leaves no trace."""
    run_dir = Path(trainer.default_root_dir).resolve()
    for logger in trainer.loggers:
        log_dir = getattr(logger, "log_dir", None)
        for folder in (Path(log_dir), Path(log_dir).parent) if log_dir else ():
            if folder.resolve() != run_dir and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def fit(cli: RealFillCLI) -> None:
    """Fine-tune; the callbacks write the LoRA and the completions when fit ends."""
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
    except BaseException:
        remove_empty_log_dirs(cli.trainer)
        raise


def main(args: list[str] | None = None) -> RealFillCLI:
    """Fit, then print the run dir."""
    cli = run_cli(RealFillCLI, fit, SaveRunConfig, args)
    if cli.trainer.is_global_zero:
        print(f"Run dir: {Path(cli.trainer.default_root_dir).resolve()}")
    return cli


if __name__ == "__main__":
    main()
