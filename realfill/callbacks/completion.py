"""The end-of-fit completion step: sample, composite, rank by correspondences, keep the best."""

import math
import time
from pathlib import Path

import lightning as L
import torch
from PIL import Image

from realfill.callbacks.compositing import FeatheredComposite, check_feathering
from realfill.callbacks.matchers import Matcher, SIFTMatcher
from realfill.callbacks.selection import (
    SELECTION_ENTRIES,
    RankedCandidate,
    matches_text,
    rank_share,
    score_candidates,
    write_selection,
)
from realfill.data import Scene
from realfill.errors import ConfigError
from realfill.io import check_replaceable, check_writable_folder
from realfill.modules.realfill import RealFillModule, check_resolution
from realfill.modules.stable_diffusion import scheduler_class


def check_sampling_scheduler(pl_module: RealFillModule, scheduler: str | None) -> None:
    """Refuse, before training, a scheduler the base model cannot sample with (e.g. Flux Fill
    takes flow matching only): found after training, it would cost the whole run."""
    pl_module.base_model.pipeline(scheduler)


def sampling_settings(
    owner: str,
    num_inference_steps: int,
    scheduler: str | None,
    guidance_scale: float | None,
    batch_size: int,
    resolution: int | None,
    feather_dilation: int,
    feather_blur: int,
) -> dict:
    """The keyword arguments of `RealFillModule.generate` for a sampling callback's settings,
    checked: a `ConfigError` naming `owner` and the setting if a sampling or compositing
    setting cannot work, raised when the callback is built, not after the fit's training."""
    if scheduler is not None:
        scheduler_class(scheduler)
    counts = {"num_inference_steps": num_inference_steps, "batch_size": batch_size}
    for name, value in counts.items():
        if value < 1:
            raise ConfigError(f"{owner}: {name} must be >= 1, got {value}")
    if resolution is not None and resolution < 1:
        raise ConfigError(f"{owner}: resolution must be >= 1 (or null), got {resolution}")
    check_feathering(owner, feather_dilation, feather_blur)
    return {
        "num_inference_steps": num_inference_steps,
        "scheduler": scheduler,
        "guidance_scale": guidance_scale,
        "batch_size": batch_size,
    }


def composited_completions(
    pl_module: RealFillModule,
    scene: Scene,
    seeds: list[int],
    resolution: int,
    feather_dilation: int,
    feather_blur: int,
    progress: bool = True,
    **sampling,
) -> list[Image.Image]:
    """Completions of the scene's target, one per seed, each composited onto the target with a
    feathered mask; `sampling` goes to `RealFillModule.generate`."""
    raw = pl_module.generate(
        scene.target, scene.mask, seeds, resolution=resolution, progress=progress, **sampling
    )
    paste = FeatheredComposite(scene.target, scene.mask, feather_dilation, feather_blur)
    return [paste(image) for image in raw]


class CompleteTarget(L.Callback):
    """Samples `num_samples` completions of the scene's target when fit ends and ranks them.

    Each raw sample is composited onto the target with a feathered mask (pixels away from the
    mask keep the target's bytes), scored by verified keypoint matches between its filled
    region and the references, and written under `<run dir>/<dirname>/`: `candidates/`,
    `ranked/` (the top `keep`), `scores.json` and `contact_sheet.png`.
    """

    def __init__(
        self,
        num_samples: int = 16,
        keep: int | None = None,
        seed: int = 0,
        num_inference_steps: int = 200,
        scheduler: str | None = None,
        guidance_scale: float | None = None,
        batch_size: int = 4,
        resolution: int | None = None,
        feather_dilation: int = 1,
        feather_blur: int = 1,
        matcher: Matcher | None = None,
        match_margin: int = 0,
        dirname: str = "completions",
    ) -> None:
        """
        Args:
            num_samples: How many candidates to sample.
            keep: How many top-ranked candidates go to ranked/; default a quarter (the paper
                keeps 16 of 64).
            seed: Candidate i is drawn with seed `seed + i`; the seed alone reproduces it.
            num_inference_steps: Denoising steps per candidate.
            scheduler: diffusers scheduler class used for sampling; default the base model's
                (DDPM, as in the paper; flow-matching Euler for Flux Fill).
            guidance_scale: Classifier-free guidance, 1 turning it off as in the paper (the
                distilled guidance for Flux Fill); default the base model's (1; Flux Fill's
                training guidance).
            batch_size: Candidates sampled together on an accelerator (one at a time on
                the CPU, where that keeps each candidate bit-for-bit reproducible by its seed).
            resolution: Shorter side of the sampling size; default the data's training
                resolution.
            feather_dilation: Pixels the mask is dilated by before compositing.
            feather_blur: Box-blur radius of the compositing mask's edge; at most
                feather_dilation, so that the blur never reaches into the hole.
            matcher: Keypoint matcher for ranking (class_path); default
                realfill.callbacks.SIFTMatcher, which needs no weights.
            match_margin: Pixels around the filled region whose matches count too (0: the
                filled region alone, as the paper counts).
            dirname: Folder under the run dir for the completions.
        """
        if num_samples < 1:
            raise ConfigError(f"CompleteTarget: num_samples must be >= 1, got {num_samples}")
        if keep is not None and keep < 0:
            raise ConfigError(f"CompleteTarget: keep must be >= 0, got {keep}")
        if seed < 0 or match_margin < 0:
            raise ConfigError(
                f"CompleteTarget: seed and match_margin must be >= 0, got {seed} and {match_margin}"
            )
        self.sampling = sampling_settings(
            "CompleteTarget",
            num_inference_steps,
            scheduler,
            guidance_scale,
            batch_size,
            resolution,
            feather_dilation,
            feather_blur,
        )
        self.num_samples = num_samples
        self.keep = keep if keep is not None else math.ceil(num_samples / 4)
        self.seed = seed
        self.resolution = resolution
        self.feather_dilation = feather_dilation
        self.feather_blur = feather_blur
        self.matcher = matcher
        self.match_margin = match_margin
        self.dirname = dirname
        self._completed = False
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
        return composited_completions(
            pl_module,
            scene,
            seeds,
            resolution,
            self.feather_dilation,
            self.feather_blur,
            progress,
            **self.sampling,
        )

    def scores(
        self, candidates: list[Image.Image], scene: Scene, progress: bool = True
    ) -> list[int]:
        """Correspondence score of each candidate (the matcher is built on first use)."""
        self.matcher = self.matcher or SIFTMatcher()
        return score_candidates(candidates, scene, self.matcher, self.match_margin, progress)

    def report(
        self,
        out: Path,
        records: list[RankedCandidate],
        seconds: float,
        stages: dict[str, float] | None = None,
    ) -> None:
        """Say how fast the candidates came (by stage, when given), where they and the best
        one are, and when no candidate matched at all, so that the order means nothing."""
        best = records[0]
        rate = 60 * len(records) / max(seconds, 1e-9)
        split = ", ".join(
            f"{name.replace('_', ' ')} {t:.1f} s" for name, t in (stages or {}).items()
        )
        count = f"{len(records)} candidate" + ("s" if len(records) != 1 else "")
        print(
            f"Sampled and ranked {count} in {seconds:.1f} s ({rate:.1f}/min)"
            + (f": {split}" if split else "")
        )
        print(f"Completions: {out} ({count}, top {min(self.keep, len(records))} in ranked/)")
        print(f"Best completion: {out / best.file} (seed {best.seed}, {matches_text(best.score)})")
        if best.score == 0:
            print(
                "No candidate's fill matched the references, so ranked/ holds the lowest seeds, "
                "not a selection (match_margin also counts matches on the hole's rim)"
            )

    def out_dir(self, trainer: L.Trainer) -> Path:
        """Where the completions go: `dirname` under the run dir."""
        return Path(trainer.default_root_dir) / self.dirname

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Refuse, before training, an output folder holding files of the user's own or that
        cannot be written, and a scheduler or resolution the base model cannot sample with."""
        if stage == "fit":
            check_replaceable(self.out_dir(trainer), SELECTION_ENTRIES)
            check_writable_folder(self.out_dir(trainer).parent, "CompleteTarget")
            check_sampling_scheduler(pl_module, self.sampling["scheduler"])
            check_resolution("CompleteTarget: resolution", self.resolution, pl_module.base_model)

    def on_fit_start(self, trainer: L.Trainer, pl_module: RealFillModule) -> None:
        self._completed = False

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
        """Sample, rank and write the completions; the seeds are shared out over the ranks, and
        global rank zero writes."""
        self._completed = True
        datamodule = trainer.datamodule
        start = time.perf_counter()
        seeds = [self.seed + i for i in range(self.num_samples)]
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
        records = write_selection(out, candidates, seeds, scores, self.keep, datamodule.scene)
        self.stage_seconds = {
            "sampling_and_compositing": sampled - start,
            "ranking": ranked - sampled,
            "writing": time.perf_counter() - ranked,
        }
        self.report(out, records, time.perf_counter() - start, self.stage_seconds)


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
