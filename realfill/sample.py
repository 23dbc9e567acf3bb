"""`python -m realfill.sample --config <run dir>/config.yaml --num_samples 64 --keep 16`:
sample many candidates from a fine-tuned run, composite, rank by correspondences, keep the best.

Seeds are spread over the trainer's devices (`--trainer.devices N --trainer.strategy ddp`),
each drawn exactly once; every candidate is reproduced by its seed alone.
"""

import json
import shutil
import sys
import time
from pathlib import Path

import lightning as L
import torch
from jsonargparse import Namespace
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from realfill import layout
from realfill.callbacks.lora import SaveLoRA
from realfill.cli import (
    SceneCLI,
    add_selection_argument,
    expand_composed_configs,
    is_callback,
    run_cli,
)
from realfill.data import Scene
from realfill.io import check_replaceable, check_writable_folder, save_images, write_json
from realfill.modules.realfill import RealFillModule, check_resolution, compute_dtype
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
    """Prediction wrapper: a batch of seeds in, composited and scored candidates out."""

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
        """The batch's candidates, composited and scored (a compiled denoiser samples the
        last, partial batch padded, see `generate`)."""
        seeds = [int(seed) for seed in seeds]
        if not seeds:
            return []
        selection = self.selection
        images = composited_completions(
            self.model, self.scene, seeds, self.resolution, selection, progress=False
        )
        matcher = selection.ranking_matcher()
        scores = score_candidates(images, self.scene, matcher, selection.match_margin, False)
        return [
            {"seed": s, "image": im, "score": sc}
            for s, im, sc in zip(seeds, images, scores, strict=True)
        ]


class CandidateWriter(BasePredictionWriter):
    """Each process writes its own candidates to a shared staging folder as they come, and
    stops at a SIGTERM."""

    def __init__(self, staging: Path) -> None:
        super().__init__(write_interval="batch")
        self.staging = staging

    def on_predict_batch_start(self, trainer, pl_module, *args) -> None:
        """Stop before the next batch after a SIGTERM (a job scheduler's pre-emption, `kill`):
        Lightning's handler only records it, and its predict loop never checks."""
        if trainer.received_sigterm:
            raise SIGTERMException()

    def write_on_batch_end(self, trainer, pl_module, prediction, *args) -> None:
        stems = [self.staging / f"seed{candidate['seed']:05d}" for candidate in prediction]
        images = [candidate["image"] for candidate in prediction]
        save_images(images, [stem.with_suffix(".png") for stem in stems])
        for stem, candidate in zip(stems, prediction, strict=True):
            write_json({"score": candidate["score"]}, stem.with_suffix(".json"))


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


def collect(staging: Path) -> tuple[list[int], list[Path], list[int]]:
    """Seeds, candidate files and scores written by every process, in seed order."""
    staged = {int(path.stem.removeprefix("seed")): path for path in staging.glob("seed*.png")}
    seeds = sorted(staged)  # by number: seed100000 comes after seed99999
    files = [staged[seed] for seed in seeds]
    scores = [json.loads(path.with_suffix(".json").read_text())["score"] for path in files]
    return seeds, files, scores


def run(cli: SampleCLI) -> Selection | None:
    """Load the run's model and LoRA, predict candidates over seeds, then select on rank 0,
    which returns the selection (the other ranks None)."""
    config, trainer = cli.config, cli.trainer
    run_dir = Path(trainer.default_root_dir)
    selection = SelectionSettings(**{key: cli.config_init[key] for key in SELECTION_KEYS})
    check_resolution("resolution", selection.resolution, cli.model.base_model)
    cli.model.base_model.load_lora(Path(config.lora or run_dir / run_lora_dirname(config)))
    out = Path(config.out or run_dir / selection.dirname)
    check_replaceable(out, layout.SELECTION_ENTRIES)
    check_writable_folder(out.parent, "--out" if config.out else "dirname")
    staging = out.parent / f".{out.name}-samples"
    if trainer.is_global_zero:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    trainer.strategy.barrier()
    datamodule = cli.datamodule
    resolution = selection.resolution or datamodule.resolution
    sampler = CandidateSampler(cli.model, selection, datamodule.scene, resolution, selection.seeds)
    trainer.callbacks.append(CandidateWriter(staging))
    start = time.perf_counter()
    try:
        trainer.predict(sampler, return_predictions=False)
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            predicted = time.perf_counter()
            seeds, files, scores = collect(staging)
            written = write_selection(out, files, seeds, scores, selection.keep, datamodule.scene)
            stages = {
                "sampling_and_ranking": predicted - start,
                "writing": time.perf_counter() - predicted,
            }
            report_selection(written, time.perf_counter() - start, stages)
            return written
        return None
    finally:  # also after Ctrl-C or a failure: no staged candidates left behind
        if trainer.is_global_zero:
            shutil.rmtree(staging, ignore_errors=True)


def main(args: list[str] | None = None) -> None:
    """Sample, composite, rank and keep the best candidates of a fine-tuned run."""
    run_cli(SampleCLI, run, None, args)


if __name__ == "__main__":
    main()
