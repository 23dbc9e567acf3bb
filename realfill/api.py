"""The commands as Python functions, for notebooks and scripts: `fit`, `sample` and `evaluate`.

Each does what its command does, with the same configs and settings, and returns what it
made. A problem with the input raises the error the command prints as its one line (a
`RealFillError`, or Lightning's verdict on trainer settings) rather than ending the process;
flags the config parser cannot read (an unknown key, a value of the wrong type) end as the
command's do, with its usage and `SystemExit(2)`.

    from realfill.api import fit
    run = fit("configs/tiny.yaml", scene_dir="examples/motorcycle", run_dir="runs/tiny")
    best = run.completions.best
    print(run.completions.path(best), best.score)
"""

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realfill import layout
from realfill.callbacks import CompleteTarget, SaveLoRA
from realfill.callbacks.records import first_callback
from realfill.callbacks.run_config import SaveRunConfig
from realfill.cli import run_command
from realfill.evaluation.backbones import MetricSuite
from realfill.evaluation.harness import (
    DEFAULT_REPORT_DIR,
    evaluate_benchmark,
    load_metric_settings,
    method_names,
    warn_unavailable,
)
from realfill.evaluation.report import write_report
from realfill.evaluation.results import CandidateResult, benchmark_scenes, scene_results
from realfill.fit import RealFillCLI
from realfill.fit import fit as fit_command
from realfill.io import check_writable_folder
from realfill.sample import SampleCLI
from realfill.sample import run as sample_command
from realfill.selection.writing import Selection

PathLike = str | os.PathLike
Overrides = Mapping[str, Any] | Sequence[str]
"""Command-line settings: `{"trainer.max_steps": 4}`, or flags as typed
(`"--trainer.max_steps=4"`)."""


@dataclass
class FitResult:
    """What a fit made."""

    run_dir: Path
    """The run dir, with the run's `config.yaml`, checkpoints and logs."""
    lora_dir: Path | None
    """The LoRA folder that `SaveLoRA` wrote (None without it in the config)."""
    completions: Selection | None
    """The end-of-fit selection that `CompleteTarget` wrote (None without it in the config)."""

    @property
    def config(self) -> Path:
        """The run's resolved config, which `sample` takes."""
        return layout.run_config(self.run_dir)


@dataclass
class EvaluationReport:
    """What an evaluation made."""

    summary: Path
    """The report's `summary.md`; the CSVs, `summary.json` and plots lie beside it."""
    candidates: list[CandidateResult]
    """Every scored candidate of every method and scene."""
    unavailable: dict[str, str]
    """The metrics that could not be computed here, with the reason."""


def as_flags(overrides: Overrides) -> list[str]:
    """Command-line flags for settings: a mapping's non-None values as `--key=value` (lists and
    mappings as JSON), or flags as given."""
    if not isinstance(overrides, Mapping):
        return list(overrides)
    return [
        f"--{key}={json.dumps(value) if isinstance(value, list | dict) else value}"
        for key, value in overrides.items()
        if value is not None
    ]


def config_flags(config: PathLike | Sequence[PathLike]) -> list[str]:
    """`--config` flags for one config file or several, stacked in order."""
    paths = [config] if isinstance(config, str | os.PathLike) else list(config)
    return [flag for path in paths for flag in ("--config", str(path))]


def fit(
    config: PathLike | Sequence[PathLike],
    scene_dir: PathLike | None = None,
    run_dir: PathLike | None = None,
    overrides: Overrides = (),
) -> FitResult:
    """Fine-tune on a scene, as `python -m realfill.fit --config CONFIG ...` does: the config
    file(s), stacked, then the scene, the run dir and `overrides` (e.g.
    `{"trainer.max_steps": 40}`) on top."""
    flags = [*config_flags(config), *as_flags(overrides)]
    flags += as_flags({"data.scene_dir": scene_dir, "trainer.default_root_dir": run_dir})
    cli, _ = run_command(RealFillCLI, fit_command, SaveRunConfig, flags)
    callbacks = cli.trainer.callbacks
    save_lora = first_callback(callbacks, SaveLoRA)
    complete = first_callback(callbacks, CompleteTarget)
    return FitResult(
        run_dir=Path(cli.trainer.default_root_dir).resolve(),
        lora_dir=save_lora.saved_to if save_lora else None,
        completions=complete.selection if complete else None,
    )


def sample(
    run: PathLike | Sequence[PathLike],
    out: PathLike | None = None,
    lora: PathLike | None = None,
    overrides: Overrides = (),
) -> Selection | None:
    """Sample, composite, rank and keep the best candidates of a fine-tuned run, as
    `python -m realfill.sample` does. `run` is a run dir, its `config.yaml`, or config files
    stacked; `overrides` sets the selection settings (`{"num_samples": 64, "keep": 16}`) or any
    other. Returns the selection (None on the processes of a multi-device run but the first)."""
    if isinstance(run, str | os.PathLike) and Path(run).is_dir():
        run = layout.run_config(Path(run))
    flags = [*config_flags(run), *as_flags(overrides)]
    flags += as_flags({"out": out, "lora": lora})
    _, selection = run_command(SampleCLI, sample_command, None, flags)
    return selection


def evaluate(
    benchmark: PathLike,
    results: Mapping[str, PathLike] | Sequence[PathLike],
    out: PathLike = DEFAULT_REPORT_DIR,
    metrics_config: PathLike | None = None,
    metrics: Mapping[str, str | None] | None = None,
) -> EvaluationReport:
    """Score the completions of one or more methods against the benchmark's ground truth and
    write the report, as `python -m realfill.evaluate` does. `results` maps a method name to its
    results folder (`<folder>/<scene>/completions/`), or lists folders named after themselves;
    `metrics` overrides settings of `metrics_config` (e.g. `{"device": "cuda"}`)."""
    if not isinstance(results, Mapping):
        results = dict(zip(method_names(results), results, strict=True))
    folders = {method: Path(folder) for method, folder in results.items()}
    settings = load_metric_settings(metrics_config, dict(metrics or {}))
    for scene_dir in benchmark_scenes(Path(benchmark)):  # before the networks load
        for folder in folders.values():
            scene_results(scene_dir, folder)
    check_writable_folder(Path(out), "--out")
    suite = MetricSuite(settings)
    warn_unavailable(suite)
    scored = evaluate_benchmark(Path(benchmark), folders, suite)
    summary = write_report(scored, suite.unavailable, Path(out), suite.settings)
    return EvaluationReport(summary, scored, dict(suite.unavailable))
