"""Evaluating completions against a benchmark's ground truth, as the `evaluate` and `benchmark`
commands and the Python API do: metric settings, the scored candidates of every scene, a name
per results folder."""

import sys
from collections.abc import Sequence
from pathlib import Path

from realfill.evaluation.backbones import LABELS, METRICS, MetricSettings, MetricSuite
from realfill.evaluation.results import (
    BenchmarkError,
    CandidateResult,
    benchmark_scenes,
    evaluate_scene,
    load_yaml,
)

DEFAULT_REPORT_DIR = Path("report")
"""Where a report goes when no folder is given."""


def load_metric_settings(path: Path | None, overrides: dict[str, str | None]) -> MetricSettings:
    """Settings from a YAML file (its `metrics:` section, or the whole mapping), then the
    command line's non-empty overrides."""
    values: dict = {}
    if path is not None:
        if not Path(path).is_file():
            raise BenchmarkError(f"{path}: metrics config not found")
        loaded = load_yaml(path) or {}
        values = loaded.get("metrics", loaded) if isinstance(loaded, dict) else None
        if not isinstance(values, dict):
            raise BenchmarkError(f"{path}: expected a mapping of metric settings")
    values |= {key: value for key, value in overrides.items() if value is not None}
    try:
        return MetricSettings.from_mapping(values)
    except (TypeError, ValueError) as error:
        raise BenchmarkError(f"{path}: {error}") from error


def warn_unavailable(suite: MetricSuite) -> None:
    """One stderr line per metric that cannot be computed here."""
    for metric, reason in suite.unavailable.items():
        print(f"realfill: warning: {LABELS[metric]} unavailable ({reason})", file=sys.stderr)


def metric_availability(suite: MetricSuite) -> list[str]:
    """One line per metric, in the paper's column order: available, or unavailable and why."""
    return [
        f"{LABELS[name]}: available"
        if name in suite.scorers
        else f"{LABELS[name]}: unavailable ({suite.unavailable[name]})"
        for name in METRICS
        if name in suite.names
    ]


def evaluate_benchmark(
    benchmark: Path, results: dict[str, Path], suite: MetricSuite
) -> list[CandidateResult]:
    """Scored candidates of every scene of the benchmark, for every method's results folder."""
    scenes = benchmark_scenes(benchmark)
    return [
        result
        for method, folder in results.items()
        for scene in scenes
        for result in evaluate_scene(scene, folder, method, suite)
    ]


def method_names(folders: Sequence[Path]) -> list[str]:
    """A name per results folder: its own name, or, for folders that share one, as many of
    their parents' names as it takes to tell them apart (`exp1/realfill`, `exp2/realfill`)."""
    parts = [Path(folder).resolve().parts[1:] for folder in folders]  # no root
    depths = [1] * len(parts)
    while True:
        names = ["/".join(p[-depth:]) for p, depth in zip(parts, depths, strict=True)]
        shared = {name for name in names if names.count(name) > 1}
        if not shared:
            return names
        grow = [i for i, name in enumerate(names) if name in shared and depths[i] < len(parts[i])]
        if not grow:
            raise BenchmarkError(f"a results folder is given twice: {sorted(shared)}")
        for i in grow:
            depths[i] += 1
