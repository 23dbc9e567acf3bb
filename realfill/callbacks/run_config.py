"""Write the run's resolved config, its single record, into the run dir."""

from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.cli import SaveConfigCallback

from realfill.io import write_text


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
        """Nothing: Lightning's would write the config to the log dir, before any check."""

    def resolved_yaml(self, run_dir: Path) -> str:
        """The resolved config of a run in `run_dir`, as YAML: what `config.yaml` holds."""
        config = self.config.clone()
        del config["ckpt_path"]
        config.trainer.default_root_dir = str(run_dir.resolve())
        config.data.scene_dir = str(Path(config.data.scene_dir).resolve())
        return self.parser.dump(config)

    def resolved(self, trainer) -> dict[str, Any]:
        """The resolved config of the trainer's run, as a mapping."""
        return yaml.safe_load(self.resolved_yaml(Path(trainer.default_root_dir)))

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            run_dir = Path(trainer.default_root_dir)
            write_text(self.resolved_yaml(run_dir), run_dir / self.config_filename)
