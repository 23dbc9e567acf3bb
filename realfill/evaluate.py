"""`python -m realfill.evaluate --benchmark DIR --results DIR [--out DIR]`: score completions.

For every scene of the benchmark (a scene folder with `target/gt.png`), reads the completions
a method wrote under `RESULTS/<scene>/completions/` and writes the report: a CSV per scene, a
markdown table in the paper's column order (`summary.md`), `summary.json` and plots. Metric
networks come from `--metrics_config` (see configs/evaluation.yaml); one that cannot be loaded
is reported as unavailable and the others still run.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from realfill.cli import HelpFormatter, exit_on_user_error
from realfill.evaluation.backbones import LABELS, MetricSettings, MetricSuite
from realfill.evaluation.report import write_report
from realfill.evaluation.results import (
    BenchmarkError,
    CandidateResult,
    benchmark_scenes,
    load_yaml,
    scene_results,
)
from realfill.evaluation.results import evaluate_scene as score_scene
from realfill.io import check_writable_folder


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


def evaluate_benchmark(
    benchmark: Path, results: dict[str, Path], suite: MetricSuite
) -> list[CandidateResult]:
    """Scored candidates of every scene of the benchmark, for every method's results folder."""
    scenes = benchmark_scenes(benchmark)
    return [
        result
        for method, folder in results.items()
        for scene in scenes
        for result in score_scene(scene, folder, method, suite)
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


def parser() -> argparse.ArgumentParser:
    """The command line."""
    parse = argparse.ArgumentParser(
        prog="python -m realfill.evaluate",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    parse.add_argument("--benchmark", type=Path, required=True, help="benchmark folder")
    parse.add_argument(
        "--results",
        type=Path,
        required=True,
        nargs="+",
        help="results folder(s), one per method: RESULTS/<scene>/completions/",
    )
    parse.add_argument(
        "--method",
        nargs="+",
        default=None,
        help="method name of each results folder (default: the folder's name, with its "
        "parents' where two folders share a name)",
    )
    parse.add_argument("--out", type=Path, default=None, help="report folder (default: report/)")
    parse.add_argument("--metrics_config", type=Path, default=None, help="metric settings YAML")
    parse.add_argument("--dino_model", default=None, help="DINO hub id or local folder")
    parse.add_argument("--clip_model", default=None, help="CLIP hub id or local folder")
    parse.add_argument("--dreamsim_cache_dir", default=None, help="DreamSim weights folder")
    parse.add_argument("--device", default=None, help="device for the metric networks")
    return parse


def main(args: Sequence[str] | None = None) -> Path:
    """Evaluate, write the report and print where it is; user errors exit with code 2."""
    options = parser().parse_args(args)
    with exit_on_user_error():
        methods = options.method or method_names(options.results)
        if len(methods) != len(options.results):
            raise BenchmarkError(
                f"{len(methods)} --method names for {len(options.results)} folders"
            )
        if len(set(methods)) != len(methods):
            raise BenchmarkError(f"--method names must differ, got {methods}")
        overrides = {
            key: getattr(options, key)
            for key in ("dino_model", "clip_model", "dreamsim_cache_dir", "device")
        }
        settings = load_metric_settings(options.metrics_config, overrides)
        results = dict(zip(methods, options.results, strict=True))
        for scene_dir in benchmark_scenes(options.benchmark):  # before the networks load
            for folder in results.values():
                scene_results(scene_dir, folder)
        out = options.out or Path("report")
        check_writable_folder(out, "--out")
        suite = MetricSuite(settings)
        warn_unavailable(suite)
        scored = evaluate_benchmark(options.benchmark, results, suite)
        summary = write_report(scored, suite.unavailable, out)
    print(f"Report: {summary.resolve()}")
    return summary


if __name__ == "__main__":
    main()
