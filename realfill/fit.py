"""`python -m realfill.fit --config configs/X.yaml [--section.key=value ...]`: fine-tune on a scene.

A LightningCLI that always fits. Every class in a config is given by `class_path`/`init_args`, so a
base model, a callback or a logger is swapped by editing YAML. Configs are merged first and
interpolated after (`omegaconf+`), so `${trainer.default_root_dir}` follows a command-line
override of the run dir and can be used from a stacked preset.
"""

from dataclasses import fields
from pathlib import Path

import torch
from lightning.pytorch import Trainer

from realfill.callbacks import CompleteTarget, SaveLoRA, WandbReport
from realfill.callbacks.run_config import SaveRunConfig
from realfill.cli import SELECTION_KEY, SceneCLI, add_selection_argument, is_callback, run_cli
from realfill.errors import ConfigError
from realfill.io import check_writable_folder
from realfill.modules.realfill import check_compile_mode, check_training_precision
from realfill.selection.settings import SelectionSettings

CHECKPOINT_KEYWORDS = ("last", "best", "hpc", "registry")
"""`--ckpt_path` values that Lightning resolves itself rather than read as a file."""


RESUME_KEYS = ("state_dict", "optimizer_states")
"""What Lightning reads from a checkpoint to resume a fit."""


def read_checkpoint(ckpt_path: str) -> object:
    """The contents of a checkpoint file, memory-mapped (its tensors are not read), or a
    `ConfigError` if torch cannot read it."""
    try:
        return torch.load(ckpt_path, map_location="cpu", mmap=True)
    except Exception:  # noqa: BLE001 (torch's reasons span lines and speak of zip internals)
        raise ConfigError(
            f"{ckpt_path}: cannot be read as a checkpoint, truncated or not one (--ckpt_path)"
        ) from None


def check_checkpoint_path(ckpt_path: str | None) -> None:
    """Refuse, before the model loads and anything is written, a `--ckpt_path` that names no
    file, or a file that is not a whole training checkpoint (truncated by a full disk or an
    interrupted copy, a LoRA file, a text file)."""
    if not ckpt_path or ckpt_path in CHECKPOINT_KEYWORDS:
        return
    if not Path(ckpt_path).is_file():
        raise ConfigError(f"{ckpt_path}: no such checkpoint file (--ckpt_path)")
    checkpoint = read_checkpoint(ckpt_path)
    missing = [
        key for key in RESUME_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint
    ]
    if missing:
        raise ConfigError(
            f"{ckpt_path}: not a training checkpoint to resume from, it has no "
            f"{' or '.join(missing)} (--ckpt_path)"
        )


def check_accumulation(accumulate_grad_batches: int) -> None:
    """Refuse a gradient accumulation of no batch, which Lightning divides by mid-step."""
    if accumulate_grad_batches < 1:
        raise ConfigError(
            f"trainer.accumulate_grad_batches must be >= 1, got {accumulate_grad_batches}"
        )


def check_one_selection(config) -> None:
    """Refuse a config that gives the end-of-fit selection twice: in `selection:` and as a
    `CompleteTarget` listed in `trainer.callbacks` (the way configs gave it before)."""
    listed = [c for c in config.trainer.callbacks or [] if is_callback(c, CompleteTarget)]
    if config.get(SELECTION_KEY) is not None and listed:
        raise ConfigError(
            f"trainer.callbacks lists {listed[0].class_path} and {SELECTION_KEY}: is set too: "
            f"give the end-of-fit selection once (move its init_args to {SELECTION_KEY}:, or "
            f"set {SELECTION_KEY}: null)"
        )


def with_selection(callbacks: list, settings: SelectionSettings) -> list:
    """`callbacks` with a `CompleteTarget` of `settings` where it belongs: after the last
    `SaveLoRA` (the LoRA is written before sampling starts, so a failure there never costs the
    trained run) and before any `WandbReport` (which reports its selection)."""
    complete = CompleteTarget(
        **{field.name: getattr(settings, field.name) for field in fields(settings)}
    )
    after = [i + 1 for i, callback in enumerate(callbacks) if isinstance(callback, SaveLoRA)]
    before = [i for i, callback in enumerate(callbacks) if isinstance(callback, WandbReport)]
    position = min([*before, max(after, default=len(callbacks))])
    return [*callbacks[:position], complete, *callbacks[position:]]


class RealFillCLI(SceneCLI):
    """The fit command's CLI: `--ckpt_path` resumes a run, `selection:` sets the end-of-fit
    selection by name."""

    def add_arguments_to_parser(self, parser) -> None:
        add_selection_argument(parser)
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="Resume from this checkpoint (e.g. <run dir>/checkpoints/last.ckpt).",
        )

    def before_instantiate_classes(self) -> None:
        """Check the scene, the checkpoint, the run dir, the precision and the accumulation and
        compile settings before the (slow) base model loads."""
        super().before_instantiate_classes()
        config = self.config
        check_checkpoint_path(config.ckpt_path)
        run_dir = Path(config.trainer.default_root_dir or Path.cwd())
        check_writable_folder(run_dir, "trainer.default_root_dir")
        check_training_precision(config.trainer.precision)
        check_accumulation(config.trainer.accumulate_grad_batches)
        check_compile_mode(config.model.compile.mode, config.trainer.accumulate_grad_batches)
        check_one_selection(config)

    def instantiate_trainer(self, **kwargs) -> Trainer:
        """The trainer, with the end-of-fit selection of `selection:` among its callbacks."""
        settings = self.config_init.get(SELECTION_KEY)
        if settings is not None:
            trainer = self.config_init.trainer
            callbacks = trainer.get("callbacks") or []
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            trainer.callbacks = with_selection(callbacks, settings)
        return super().instantiate_trainer(**kwargs)


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
