"""The end-of-fit completion step: sample, composite, rank by correspondences, keep the best."""

import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from PIL import Image

from realfill import layout
from realfill.data import Scene
from realfill.io import check_replaceable, check_writable_folder
from realfill.modules.realfill import RealFillModule, check_resolution
from realfill.modules.sampling import raise_on_sigterm
from realfill.selection import (
    Selection,
    SelectionSettings,
    composited_completions,
    rank_share,
    report_selection,
    score_candidates,
    write_selection,
)
from realfill.stopping import stop_checked


def check_sampling_scheduler(pl_module: RealFillModule, scheduler: str | None) -> None:
    """Refuse, before training, a scheduler the base model cannot sample with (e.g. Flux Fill
    takes flow matching only): found after training, it would cost the whole run."""
    pl_module.base_model.pipeline(scheduler)


@dataclass(eq=False)
class CompleteTarget(SelectionSettings, L.Callback):
    """Samples `num_samples` completions of the scene's target when fit ends and ranks them.

    Each raw sample is composited onto the target with a feathered mask (pixels away from the
    mask keep the target's bytes), scored by verified keypoint matches between its filled
    region and the references, and written under `<run dir>/<dirname>/`: `candidates/`,
    `ranked/` (the top `keep`), `scores.json` and `contact_sheet.png`. Its settings are the
    fields of `SelectionSettings`.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self._completed = False
        self.selection: Selection | None = None
        """The selection the last fit wrote (on global rank zero), for the callbacks after this
        one and the Python API: they need not read it back from disk."""
        self.stage_seconds: dict[str, float] = {}
        """Seconds of each selection stage at the end of the last fit (this rank's sampling and
        ranking, then gathering and writing): where the selection time goes."""

    def candidates(
        self,
        pl_module: RealFillModule,
        scene: Scene,
        seeds: list[int],
        resolution: int,
        progress: bool = True,
    ) -> list[Image.Image]:
        """Composited completions of the scene's target, one per seed."""
        return composited_completions(pl_module, scene, seeds, resolution, self, progress)

    def scores(
        self, candidates: list[Image.Image], scene: Scene, progress: bool = True
    ) -> list[int]:
        """Correspondence score of each candidate (the matcher is built on first use)."""
        matcher = self.ranking_matcher()
        return score_candidates(candidates, scene, matcher, self.match_margin, progress)

    def out_dir(self, trainer: L.Trainer) -> Path:
        """Where the completions go: `dirname` under the run dir."""
        return Path(trainer.default_root_dir) / self.dirname

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Refuse, before training, an output folder holding files of the user's own or that
        cannot be written, and a scheduler or resolution the base model cannot sample with."""
        if stage == "fit":
            check_replaceable(self.out_dir(trainer), layout.SELECTION_PATTERNS)
            check_writable_folder(self.out_dir(trainer).parent, "CompleteTarget")
            check_sampling_scheduler(pl_module, self.scheduler)
            check_resolution("CompleteTarget: resolution", self.resolution, pl_module.base_model)

    def on_fit_start(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        self._completed = False
        self.selection = None

    def on_train_end(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        """Sample when training ends, while the model is still on its device (Lightning moves it
        to the CPU before `on_fit_end`)."""
        self.complete(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        """Sample now if Lightning skipped `on_train_end`: a fit resumed from a checkpoint of
        its last step (one stopped while sampling) has no step left to train. The model goes
        back to its device for the sampling, and to the CPU after, where Lightning left it."""
        if self._completed:
            return
        pl_module.to(trainer.strategy.root_device)
        try:
            self.complete(trainer, pl_module)
        finally:
            pl_module.cpu()

    def complete(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        """Sample, rank and write the completions, stopping at a SIGTERM (at the next
        denoising step, or before and after the writing: the earlier completions stay)."""
        self._completed = True
        with stop_checked(lambda: raise_on_sigterm(trainer)):
            self.select(trainer, pl_module)
        raise_on_sigterm(trainer)

    def select(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        """Sample, rank and write the completions; the seeds are shared out over the ranks, and
        global rank zero writes."""
        datamodule = trainer.datamodule
        start = time.perf_counter()
        seeds = self.seeds
        mine = rank_share(seeds, trainer.global_rank, trainer.world_size)
        progress = trainer.is_global_zero
        with trainer.precision_plugin.forward_context():
            candidates = self.candidates(
                pl_module,
                datamodule.scene,
                mine,
                self.resolution or datamodule.resolution,
                progress,
            )
        sampled = time.perf_counter()
        scores = self.scores(candidates, datamodule.scene, progress)
        ranked = time.perf_counter()
        drawn = gather_objects(trainer, list(zip(mine, candidates, scores, strict=True)))
        if not trainer.is_global_zero:
            return
        seeds, candidates, scores = map(list, zip(*sorted(drawn, key=lambda d: d[0]), strict=True))
        out = self.out_dir(trainer)
        raise_on_sigterm(trainer)
        self.selection = write_selection(
            out, candidates, seeds, scores, self.keep, datamodule.scene
        )
        self.stage_seconds = {
            "sampling_and_compositing": sampled - start,
            "ranking": ranked - sampled,
            "writing": time.perf_counter() - ranked,
        }
        report_selection(self.selection, time.perf_counter() - start, self.stage_seconds)


def gather_objects(trainer: L.Trainer, items: list) -> list:
    """Every rank's `items`, concatenated, on global rank zero (the items themselves in one
    process); an empty list elsewhere: only rank zero writes, so only it receives the images."""
    if trainer.world_size == 1 or not torch.distributed.is_initialized():
        return items
    gathered: list[list | None] | None = (
        [None] * trainer.world_size if trainer.is_global_zero else None
    )
    torch.distributed.gather_object(items, gathered, dst=0)
    return [item for part in gathered for item in part] if gathered is not None else []
