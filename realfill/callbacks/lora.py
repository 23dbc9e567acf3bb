"""Save the LoRA adapters in the diffusers format at the end of fit."""

from pathlib import Path

import lightning as L

from realfill import layout
from realfill.callbacks.checkpoint import stopped_on_request
from realfill.io import check_replaceable
from realfill.modules.lora_io import LORA_WEIGHTS_NAME
from realfill.modules.realfill import RealFillModule


class SaveLoRA(L.Callback):
    """Writes `<run dir>/<dirname>/pytorch_lora_weights.safetensors` when training ends, before
    the end-of-fit sampling of a `CompleteTarget` listed after it: whatever happens there, the
    trained LoRA is kept. A fit stopped with Ctrl-C or SIGTERM writes the LoRA of the step it
    reached.

    Stock diffusers loads it unchanged: `Pipeline.from_pretrained(base).load_lora_weights(dir)`.
    """

    def __init__(self, dirname: str = layout.LORA_DIRNAME) -> None:
        """
        Args:
            dirname: Folder under the run dir (trainer.default_root_dir) to write the LoRA to.
        """
        self.dirname = dirname
        self._saved = False
        self.saved_to: Path | None = None
        """The folder the last fit wrote the LoRA to (on global rank zero), for the callbacks
        after this one and the Python API."""

    def lora_dir(self, trainer: L.Trainer) -> Path:
        return Path(trainer.default_root_dir) / self.dirname

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Refuse, before training, a LoRA folder holding files of the user's own."""
        if stage == "fit":
            check_replaceable(self.lora_dir(trainer), {LORA_WEIGHTS_NAME})

    def on_fit_start(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        self._saved = False
        self.saved_to = None

    def on_train_end(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        self.save(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        """A fit of zero steps skips `on_train_end`: its (untrained) LoRA is written here,
        without a line saying so (the prompt-only baseline's fits nothing)."""
        if not self._saved:
            self.save(trainer, pl_module, quiet=trainer.global_step == 0)

    def on_exception(
        self, trainer: L.Trainer, pl_module: RealFillModule, exception: BaseException
    ) -> None:
        """Stopped with Ctrl-C or SIGTERM after some training (e.g. the periodic samples look
        done): the LoRA of the step reached, for `realfill.sample`. A crash writes none."""
        if stopped_on_request(exception) and trainer.global_step > 0 and not self._saved:
            self.save(trainer, pl_module, f" (stopped at step {trainer.global_step})")

    def save(
        self, trainer: L.Trainer, pl_module: RealFillModule, note: str = "", quiet: bool = False
    ) -> None:
        self._saved = True
        if trainer.is_global_zero:
            pl_module.save_lora(self.lora_dir(trainer))
            self.saved_to = self.lora_dir(trainer).resolve()
            if not quiet:
                print(f"LoRA{note}: {self.lora_dir(trainer) / LORA_WEIGHTS_NAME}")
