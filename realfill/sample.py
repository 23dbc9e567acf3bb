"""`python -m realfill.sample --config <run dir>/config.yaml --num_samples 64 --keep 16`:
sample many candidates from a fine-tuned run, composite, rank by correspondences, keep the best.

The run is the folder of the config.yaml given (a copied run samples its own LoRA into its
own folder), or `trainer.default_root_dir` when no run config is given.

Seeds are spread over the trainer's devices (`--trainer.devices N --trainer.strategy ddp`),
each drawn exactly once; every candidate is reproduced by its seed alone.
"""

import os
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import lightning as L
import torch
from jsonargparse import Namespace
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image
from torch.utils.data import DataLoader

from realfill import layout
from realfill.callbacks.lora import SaveLoRA
from realfill.cli import (
    SceneCLI,
    add_selection_argument,
    expand_composed_configs,
    is_callback,
    run_cli,
    sigterm_raises,
)
from realfill.data import Scene
from realfill.io import (
    check_replaceable,
    check_writable_folder,
    make_staging_folder,
    output_lock,
    remove_stale_staging,
    save_images,
)
from realfill.modules.realfill import RealFillModule, check_resolution, compute_dtype
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
from realfill.selection.settings import SELECTION_KEYS
from realfill.stopping import stop_checked

PRINT_AND_EXIT_OPTIONS = ("--help", "--print_config")
"""Options that print and exit: left out of the first parse, which only reads the run's
settings."""


def prints_and_exits(arg: str) -> bool:
    """Whether a command-line word is `-h` or one of `PRINT_AND_EXIT_OPTIONS`, perhaps
    abbreviated (argparse takes any unambiguous prefix) or with `=value`."""
    option = arg.split("=", 1)[0]
    if option == "-h":
        return True
    return len(option) > 2 and any(name.startswith(option) for name in PRINT_AND_EXIT_OPTIONS)


class CandidateSampler(L.LightningModule):
    """Prediction wrapper: a batch of seeds in, composited candidates out (ranked after, on
    rank 0, with a bar of its own)."""

    def __init__(
        self,
        model: RealFillModule,
        selection: SelectionSettings,
        scene: Scene,
        resolution: int,
        seeds: list[int],
    ) -> None:
        super().__init__()
        self.model = model
        self.selection = selection
        self.scene = scene
        self.resolution = resolution
        self.seeds = seeds

    def setup(self, stage: str) -> None:
        self.model.base_model.cast_frozen(compute_dtype(self.trainer.precision))

    @property
    def num_candidates(self) -> int:
        """How many candidates this process draws (its progress bar's total)."""
        return len(rank_share(self.seeds, self.global_rank, self.trainer.world_size))

    def predict_dataloader(self) -> DataLoader:
        """This rank's share of the seeds, as the end-of-fit selection shares them out. A rank
        left without one gets a single empty batch: Lightning refuses an empty loader."""
        mine = rank_share(self.seeds, self.global_rank, self.trainer.world_size)
        if not mine:
            return DataLoader([torch.empty(0, dtype=torch.long)], batch_size=None)
        return DataLoader(torch.tensor(mine), batch_size=self.selection.batch_size)

    def predict_step(self, seeds: torch.Tensor, batch_idx: int) -> list[dict]:
        """The batch's candidates, composited (a compiled denoiser samples the last, partial
        batch padded, see `generate`)."""
        seeds = [int(seed) for seed in seeds]
        if not seeds:
            return []
        images = composited_completions(
            self.model, self.scene, seeds, self.resolution, self.selection, progress=False
        )
        return [{"seed": s, "image": im} for s, im in zip(seeds, images, strict=True)]


class CandidateWriter(BasePredictionWriter):
    """Each process writes its own candidates to a staging folder beside `out`, unique to
    this run and shared by its processes, as they come; stops at a SIGTERM."""

    def __init__(self, out: Path) -> None:
        super().__init__(write_interval="batch")
        self.out = out
        self.staging: Path | None = None
        """The staging folder, once the processes are set up (rank 0 makes it)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Rank 0 makes the staging folder and tells the others where it is."""
        made = str(make_staging_folder(self.out)) if trainer.is_global_zero else None
        self.staging = Path(trainer.strategy.broadcast(made))

    def on_predict_batch_start(self, trainer, pl_module, *args) -> None:
        """Stop before the next batch after a SIGTERM (a job scheduler's pre-emption, `kill`):
        Lightning's handler only records it, and its predict loop never checks."""
        raise_on_sigterm(trainer)

    def write_on_batch_end(self, trainer, pl_module, prediction, *args) -> None:
        files = [self.staging / f"seed{candidate['seed']:05d}.png" for candidate in prediction]
        save_images([candidate["image"] for candidate in prediction], files)


def run_lora_dirname(config: Namespace) -> str:
    """The folder the run's `SaveLoRA` wrote the LoRA to, under the run dir."""
    for callback in config.trainer.callbacks or []:
        if is_callback(callback, SaveLoRA):
            return (
                getattr(callback.init_args or Namespace(), "dirname", None) or layout.LORA_DIRNAME
            )
    return layout.LORA_DIRNAME


def run_selection_settings(parser, args: list[str]) -> dict:
    """The end-of-fit selection settings of the configs `args` name (the run's: its `selection:`
    section, or the `CompleteTarget` an older run lists in `trainer.callbacks`), read by a quiet
    first parse; none if they do not parse (the real parse says why)."""
    quiet = [arg for arg in args if not prints_and_exits(arg)]
    exit_on_error, parser.exit_on_error = parser.exit_on_error, False
    try:
        config = parser.parse_args(quiet)
    except Exception:  # noqa: BLE001 (whatever it is, the real parse meets it and reports it)
        return {}
    finally:
        parser.exit_on_error = exit_on_error
    sections = [config.selection] if config.get("selection") else []
    sections += [  # a run configured before `selection:`: its listed CompleteTarget's
        callback.init_args or Namespace()
        for callback in config.trainer.callbacks or []
        if is_callback(callback, SelectionSettings)  # CompleteTarget, or one derived from it
    ]
    settings: dict = {}
    for section in sections:
        for key, value in vars(section).items():
            if key in SELECTION_KEYS:
                settings[key] = value.as_dict() if isinstance(value, Namespace) else value
    return settings


class SampleCLI(SceneCLI):
    """The fit config (model, data, trainer) plus the selection settings at top level.

    The selection settings default to the run's own `CompleteTarget` callback (its steps,
    scheduler, feathering, matcher), so a run samples as it was configured; a top-level key in
    a later config file, or a flag, overrides one. `--help` and `--print_config` show them.
    """

    def parse_arguments(self, parser, args) -> None:
        given = expand_composed_configs(list(args) if args is not None else sys.argv[1:])
        parser.set_defaults(run_selection_settings(parser, given))
        super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        self.config.trainer.logger = False  # sampling logs nothing: no empty logs/version_N
        self.config.trainer.use_distributed_sampler = False  # CandidateSampler shares the seeds

    def add_arguments_to_parser(self, parser) -> None:
        add_selection_argument(parser)  # the run's, read as the defaults of the settings below
        parser.add_class_arguments(SelectionSettings, None)
        parser.add_argument(
            "--lora",
            type=str | None,
            default=None,
            help="LoRA folder to sample with (default: the run's, <run dir>/lora).",
        )
        parser.add_argument(
            "--out",
            type=str | None,
            default=None,
            help="Output folder (default: <run dir>/<dirname>, i.e. <run dir>/completions).",
        )


def collect(staging: Path) -> tuple[list[int], list[Path]]:
    """Seeds and candidate files written by every process, in seed order."""
    staged = {int(path.stem.removeprefix("seed")): path for path in staging.glob("seed*.png")}
    seeds = sorted(staged)  # by number: seed100000 comes after seed99999
    return seeds, [staged[seed] for seed in seeds]


def ranked_scores(files: list[Path], scene: Scene, selection: SelectionSettings) -> list[int]:
    """The candidates' correspondence scores, with a progress bar (the candidates are read
    back from the staging folder: PNG keeps their pixels)."""
    images = []
    for file in files:
        with Image.open(file) as image:
            images.append(image.convert("RGB"))
    matcher = selection.ranking_matcher()
    return score_candidates(images, scene, matcher, selection.match_margin, progress=True)


def sample_run_dir(config: Namespace, default_root_dir: str) -> Path:
    """The run to sample: the folder of the run config given (the last `--config` named
    config.yaml), so that a copied run samples its own LoRA into its own folder whatever run
    dir the config records; `trainer.default_root_dir` when no run config is given."""
    given = [Path(os.fspath(path)) for path in config.get("config") or []]
    runs = [path for path in given if path.name == layout.CONFIG_FILENAME]
    return runs[-1].absolute().parent if runs else Path(default_root_dir)


def run(cli: SampleCLI) -> Selection | None:
    """Load the run's model and LoRA, predict candidates over seeds, then select on rank 0,
    which returns the selection (the other ranks None). Rank 0 holds the output's lock
    throughout: a second command writing the same output is refused."""
    config, trainer = cli.config, cli.trainer
    run_dir = sample_run_dir(config, trainer.default_root_dir)
    selection = SelectionSettings(**{key: cli.config_init[key] for key in SELECTION_KEYS})
    check_resolution("resolution", selection.resolution, cli.model.base_model)
    out = Path(config.out or run_dir / selection.dirname)
    check_writable_folder(out.parent, "--out" if config.out else "dirname")
    with output_lock(out) if trainer.is_global_zero else nullcontext():
        check_replaceable(out, layout.SELECTION_PATTERNS)
        cli.model.base_model.load_lora(Path(config.lora or run_dir / run_lora_dirname(config)))
        return sample_into(cli, selection, out)


def sample_into(cli: SampleCLI, selection: SelectionSettings, out: Path) -> Selection | None:
    """Sample into a staging folder of this run's own (`CandidateWriter`), then write the
    selection to `out` on rank 0; the staging folder goes whatever happens."""
    trainer, datamodule = cli.trainer, cli.datamodule
    if trainer.is_global_zero:
        remove_stale_staging(out)
    resolution = selection.resolution or datamodule.resolution
    sampler = CandidateSampler(cli.model, selection, datamodule.scene, resolution, selection.seeds)
    writer = CandidateWriter(out)
    trainer.callbacks.append(writer)
    start = time.perf_counter()
    try:
        with stop_checked(lambda: raise_on_sigterm(trainer)):
            trainer.predict(sampler, return_predictions=False)
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            sampled = time.perf_counter()
            seeds, files = collect(writer.staging)
            with sigterm_raises():  # the trainer's handler is gone
                scores = ranked_scores(files, datamodule.scene, selection)
                ranked = time.perf_counter()
                written = write_selection(
                    out, files, seeds, scores, selection.keep, datamodule.scene
                )
            stages = {
                "sampling": sampled - start,
                "ranking": ranked - sampled,
                "writing": time.perf_counter() - ranked,
            }
            report_selection(written, time.perf_counter() - start, stages)
            return written
        return None
    finally:  # also after Ctrl-C or a failure: no staged candidates left behind
        if trainer.is_global_zero and writer.staging is not None:
            shutil.rmtree(writer.staging, ignore_errors=True)


def main(args: list[str] | None = None) -> None:
    """Sample, composite, rank and keep the best candidates of a fine-tuned run."""
    run_cli(SampleCLI, run, None, args)


if __name__ == "__main__":
    main()
