"""`python -m realfill.fit --config configs/X.yaml [--section.key=value ...]`: fine-tune on a scene.

A LightningCLI that always fits. Every class in a config is given by `class_path`/`init_args`, so a
base model, a callback or a logger is swapped by editing YAML. Configs are merged first and
interpolated after (`omegaconf+`), so `${trainer.default_root_dir}` follows a command-line
override of the run dir and can be used from a stacked preset.
"""

from pathlib import Path

from lightning.pytorch.cli import SaveConfigCallback

from realfill.cli import SceneCLI, run_cli
from realfill.modules.realfill import check_compile_mode, check_training_precision


class SaveRunConfig(SaveConfigCallback):
    """Writes the resolved config to `<run dir>/config.yaml`, the run's single record."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.is_global_zero:
            run_dir = Path(trainer.default_root_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            config = self.config.clone()
            del config["ckpt_path"]
            self.parser.save(config, run_dir / self.config_filename, overwrite=True)


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
        check_training_precision(config.trainer.precision)
        check_compile_mode(config.model.compile_mode, config.trainer.accumulate_grad_batches)


def fit(cli: RealFillCLI) -> None:
    """Fine-tune; the callbacks write the LoRA and the completions when fit ends."""
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)


def main(args: list[str] | None = None) -> RealFillCLI:
    """Fit, then print the run dir."""
    cli = run_cli(RealFillCLI, fit, SaveRunConfig, args)
    if cli.trainer.is_global_zero:
        print(f"Run dir: {Path(cli.trainer.default_root_dir).resolve()}")
    return cli


if __name__ == "__main__":
    main()
