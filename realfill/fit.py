"""`python -m realfill.fit --config configs/X.yaml [--section.key=value ...]`: fine-tune on a scene.

A LightningCLI that always fits. Every class in a config is given by `class_path`/`init_args`, so a
base model, a callback or a logger is swapped by editing YAML. Configs are merged first and
interpolated after (`omegaconf+`), so `${trainer.default_root_dir}` follows a command-line
override of the run dir and can be used from a stacked preset.
"""

import sys
from pathlib import Path

from jsonargparse import set_parsing_settings
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from realfill.data import SceneDataModule, load_scene
from realfill.errors import RealFillError
from realfill.modules import RealFillModule


class SaveRunConfig(SaveConfigCallback):
    """Writes the resolved config to `<run dir>/config.yaml`, the run's single record."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.is_global_zero:
            run_dir = Path(trainer.default_root_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            config = self.config.clone()
            del config["ckpt_path"]
            self.parser.save(config, run_dir / self.config_filename, overwrite=True)


class RealFillCLI(LightningCLI):
    """LightningCLI with the fit subcommand fixed and `--ckpt_path` to resume."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="Resume from this checkpoint (e.g. <run dir>/checkpoints/last.ckpt).",
        )

    def before_instantiate_classes(self) -> None:
        """Check the scene before the (slow) base model loads: a bad scene fails in a second."""
        data = self.config.data
        load_scene(data.scene_dir, data.max_references)


def user_error(error: BaseException | None) -> RealFillError | None:
    """The user-facing error behind an exception, if any (config parsing may wrap it)."""
    while error is not None:
        if isinstance(error, RealFillError):
            return error
        error = error.__cause__ or error.__context__
    return None


def main(args: list[str] | None = None) -> None:
    """Fit; a problem with the user's input ends with one line on stderr and exit code 2."""
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    try:
        cli = RealFillCLI(
            RealFillModule,
            SceneDataModule,
            save_config_callback=SaveRunConfig,
            parser_kwargs={"parser_mode": "omegaconf+"},
            args=args,
            run=False,
        )
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
    except Exception as error:
        reason = user_error(error)
        if reason is None:
            raise
        print(f"realfill: error: {reason}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"Run dir: {Path(cli.trainer.default_root_dir).resolve()}")


if __name__ == "__main__":
    main()
