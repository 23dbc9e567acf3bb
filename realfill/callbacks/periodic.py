"""Sample the same few seeds every N optimizer steps, to watch a fit converge."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from PIL import Image

from realfill import layout
from realfill.callbacks.completion import check_sampling_scheduler
from realfill.callbacks.wandb import wandb_loggers
from realfill.errors import ConfigError
from realfill.io import check_replaceable, check_writable_folder, save_image, write_manifest
from realfill.modules.realfill import RealFillModule, check_resolution
from realfill.selection import SamplingSettings, composited_completions, contact_sheet


def sample_captions(step: int, seeds: Sequence[int]) -> list[str]:
    """One caption per sample: the optimizer step it shows and the seed that drew it."""
    return [f"step {step} seed {seed}" for seed in seeds]


def rng_devices(device: torch.device) -> list[torch.device]:
    """The devices besides the CPU whose random state sampling must leave as it found it."""
    return [device] if device.type == "cuda" else []


@dataclass(eq=False)
class PeriodicSampling(SamplingSettings, L.Callback):
    """Every `every_n_steps` optimizer steps, completes the target with a fixed set of seeds.

    The seeds never change, so sheets from different steps show the same draws and differ only
    by what training has changed. Each sample is composited onto the target as `CompleteTarget`
    does; the captioned contact sheet is written to `<run dir>/<dirname>/stepNNNNNN.png` and the
    samples are logged (key `key`) to every `WandbLogger` in `trainer.loggers`. Only global rank
    zero samples; the other ranks wait for it at their next gradient synchronisation. Sampling
    runs on a fork of the global random state (CPU and the module's CUDA device), so training
    draws the same random numbers with or without this callback. Its sampling settings
    are the fields of `SamplingSettings`.
    """

    every_n_steps: int = 250
    """Sample after every this many optimizer steps (not at step 0)."""
    seeds: Sequence[int] = (0, 1, 2, 3)
    """The fixed seeds sampled each time; the same seeds make sheets comparable."""
    num_inference_steps: int = 50
    """Denoising steps per sample (fewer than for the final completions: these only show
    progress)."""
    dirname: str = layout.SAMPLES_DIRNAME
    """Folder under the run dir for the contact sheets."""
    key: str = "samples"
    """Name the samples are logged under in W&B."""

    def __post_init__(self) -> None:
        if self.every_n_steps < 1:
            raise ConfigError(
                f"PeriodicSampling: every_n_steps must be >= 1, got {self.every_n_steps}"
            )
        if len(self.seeds) == 0:
            raise ConfigError("PeriodicSampling: seeds must name at least one seed")
        super().__post_init__()
        self.seeds = [int(seed) for seed in self.seeds]
        self._last_sampled_step: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: RealFillModule, stage: str) -> None:
        """Refuse, before training, a sheet folder that cannot be written, and a scheduler or
        resolution the base model cannot sample with: found at the first sampling step, after
        `every_n_steps` steps of training, they would stop the fit there."""
        if stage == "fit":
            folder = self.sheet_path(trainer, 0).parent
            check_writable_folder(folder, "PeriodicSampling")
            check_replaceable(folder, layout.SHEET_PATTERNS)  # a user's file is never touched
            check_sampling_scheduler(pl_module, self.scheduler)
            check_resolution("PeriodicSampling: resolution", self.resolution, pl_module.base_model)

    def on_train_start(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        """The step training starts from counts as sampled: a fit resumed at a sampling step
        with gradient accumulation sees that step again in its first micro-batches, and its
        sheet was drawn before the checkpoint was saved.

        A fit from step 0 into a run dir sampled before removes that fit's sheets, so that
        the folder shows one training's progress (a resumed fit keeps them); the folder holds
        nothing else (`setup` refused a file realfill did not write there)."""
        self._last_sampled_step = trainer.global_step
        if not trainer.is_global_zero or trainer.global_step != 0:
            return
        folder = self.sheet_path(trainer, 0).parent
        if folder.is_dir():
            for sheet in folder.glob("*.png"):
                sheet.unlink()
            write_manifest(folder)

    def is_due(self, step: int) -> bool:
        """Whether `step` is a sampling step not yet sampled.

        With gradient accumulation `on_train_batch_end` sees the same step several times, and
        sampling it once is enough.
        """
        return step > 0 and step % self.every_n_steps == 0 and step != self._last_sampled_step

    def samples(self, trainer: L.Trainer, pl_module: RealFillModule) -> list[Image.Image]:
        """The seeds' completions of the scene's target, composited onto it."""
        datamodule = trainer.datamodule
        fork = torch.random.fork_rng(devices=rng_devices(pl_module.device))
        with fork, trainer.precision_plugin.forward_context():
            resolution = self.resolution or datamodule.resolution
            return composited_completions(
                pl_module, datamodule.scene, self.seeds, resolution, self, progress=False
            )

    def sheet_path(self, trainer: L.Trainer, step: int) -> Path:
        """Where the contact sheet of `step` goes."""
        return Path(trainer.default_root_dir) / self.dirname / layout.sheet_file(step)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: RealFillModule, outputs, batch, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or not self.is_due(step):
            return
        self._last_sampled_step = step
        images = self.samples(trainer, pl_module)
        captions = sample_captions(step, self.seeds)
        save_image(contact_sheet(images, captions), self.sheet_path(trainer, step))
        write_manifest(self.sheet_path(trainer, step).parent)
        for logger in wandb_loggers(trainer):
            logger.log_image(key=self.key, images=images, caption=captions, step=step)
