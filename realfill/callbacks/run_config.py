"""Write the run's resolved config, its single record, into the run dir."""

from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.cli import SaveConfigCallback

from realfill.errors import OutputError
from realfill.io import read_text, write_text

RUN_CONFIG_HEADER = (
    "# The resolved config of the realfill fit in this folder (the next fit here rewrites it)\n"
)
"""The first line of every `config.yaml` a fit writes: what tells it from a user's file."""


def recorded_run_dir(text: str) -> Path | None:
    """The run dir a config's text records (`trainer.default_root_dir`), if any."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    trainer = config.get("trainer") if isinstance(config, dict) else None
    root = trainer.get("default_root_dir") if isinstance(trainer, dict) else None
    return Path(root) if isinstance(root, str) else None


def written_by_realfill(text: str, run_dir: Path) -> bool:
    """Whether a run dir's config.yaml is one a fit wrote: it starts with
    `RUN_CONFIG_HEADER`, or (written before that header) records this run dir as its own."""
    if text.startswith(RUN_CONFIG_HEADER):
        return True
    recorded = recorded_run_dir(text)
    return recorded is not None and recorded.resolve() == Path(run_dir).resolve()


def check_run_config_replaceable(path: Path, run_dir: Path) -> None:
    """Refuse (`OutputError`), before training, to overwrite a `config.yaml` in the run dir
    that a fit did not write (the user's own config, kept there)."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_file():
        raise OutputError(f"{path}: exists and is not a file; choose another run dir")
    if not written_by_realfill(read_text(path, OutputError), run_dir):
        raise OutputError(
            f"{path}: realfill did not write it; move it or choose another run dir "
            "(trainer.default_root_dir), where a fit writes its config"
        )


class SaveRunConfig(SaveConfigCallback):
    """Writes the resolved config to `<run dir>/config.yaml`, the run's single record. The run
    dir and the scene are recorded as absolute paths, so that `realfill.sample --config
    <run dir>/config.yaml` finds them from any working directory.

    It is written when fit starts, once the module, the callbacks and a resumed checkpoint have
    been checked and loaded, and atomically: a fit refused before that (a checkpoint whose LoRA
    does not fit the config) leaves the run's earlier record as it was. Other callbacks take
    the same config from `resolved` (`WandbReport`), in any order.
    """

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Refuse, before training, a config.yaml of the user's own in the run dir (Lightning's
        would write the config to the log dir, before any check)."""
        if stage == "fit":
            run_dir = Path(trainer.default_root_dir)
            check_run_config_replaceable(run_dir / self.config_filename, run_dir)

    def resolved_yaml(self, run_dir: Path) -> str:
        """The resolved config of a run in `run_dir`, as YAML: what `config.yaml` holds."""
        config = self.config.clone()
        del config["ckpt_path"]
        config.trainer.default_root_dir = str(run_dir.resolve())
        config.data.scene_dir = str(Path(config.data.scene_dir).resolve())
        return RUN_CONFIG_HEADER + self.parser.dump(config)

    def resolved(self, trainer) -> dict[str, Any]:
        """The resolved config of the trainer's run, as a mapping."""
        return yaml.safe_load(self.resolved_yaml(Path(trainer.default_root_dir)))

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            run_dir = Path(trainer.default_root_dir)
            write_text(self.resolved_yaml(run_dir), run_dir / self.config_filename)
