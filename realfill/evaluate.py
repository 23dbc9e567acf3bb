"""`python -m realfill.evaluate --benchmark DIR --results DIR [--out DIR]`: score completions.

For every scene of the benchmark (a scene folder with `target/gt.png`), reads the completions
a method wrote under `RESULTS/<scene>/completions/` and writes the report: a CSV per scene, a
markdown table in the paper's column order (`summary.md`), `summary.json` and plots. Metric
networks come from `--metrics_config` (see configs/evaluation.yaml); one that cannot be loaded
is reported as unavailable and the others still run.

`python -m realfill.evaluate --check_metrics` loads every metric's network and says which are
available: where there is network it downloads the missing weights into their caches (then
copy those folders to an offline machine); offline it names what is missing before a long run.
"""

import argparse
from collections.abc import Sequence
from pathlib import Path

from realfill.api import evaluate
from realfill.cli import HelpFormatter, exit_on_user_error
from realfill.evaluation.backbones import LPIPS_REGIONS, MetricSuite
from realfill.evaluation.harness import (
    DEFAULT_REPORT_DIR,
    load_metric_settings,
    method_names,
    metric_availability,
)
from realfill.evaluation.report import check_report_replaceable
from realfill.evaluation.results import BenchmarkError
from realfill.io import check_writable_folder


def parser() -> argparse.ArgumentParser:
    """The command line."""
    parse = argparse.ArgumentParser(
        prog="python -m realfill.evaluate",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    parse.add_argument("--benchmark", type=Path, help="benchmark folder (required)")
    parse.add_argument(
        "--results",
        type=Path,
        nargs="+",
        help="results folder(s), one per method: RESULTS/<scene>/completions/ (required)",
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
    parse.add_argument(
        "--dreamsim_cache_dir",
        default=None,
        help="DreamSim weights folder (default $TORCH_HOME/hub/dreamsim)",
    )
    parse.add_argument("--device", default=None, help="device for the metric networks")
    parse.add_argument(
        "--lpips_region",
        choices=LPIPS_REGIONS,
        default=None,
        help="where LPIPS compares: mask (the paper's protocol, the default) or box (the "
        "mask's bounding box, an earlier variant)",
    )
    parse.add_argument(
        "--check_metrics",
        action="store_true",
        help="only load every metric's network (downloading missing weights where there is "
        "network), print which are available and exit: 0 if all are, 1 if not",
    )
    return parse


def metric_overrides(options: argparse.Namespace) -> dict[str, str | None]:
    """The metric settings given on the command line."""
    keys = ("dino_model", "clip_model", "dreamsim_cache_dir", "device", "lpips_region")
    return {key: getattr(options, key) for key in keys}


def check_metrics(options: argparse.Namespace) -> int:
    """Load every metric and print a line each; the exit code: 0 if all are available."""
    with exit_on_user_error():
        settings = load_metric_settings(options.metrics_config, metric_overrides(options))
    suite = MetricSuite(settings)
    print("\n".join(metric_availability(suite)))
    return 1 if suite.unavailable else 0


def main(args: Sequence[str] | None = None) -> Path:
    """Evaluate, write the report and print where it is; user errors exit with code 2."""
    parse = parser()
    options = parse.parse_args(args)
    if options.check_metrics:
        raise SystemExit(check_metrics(options))
    if options.benchmark is None or not options.results:
        parse.error("--benchmark and --results are required (or --check_metrics alone)")
    with exit_on_user_error():
        methods = options.method or method_names(options.results)
        if len(methods) != len(options.results):
            raise BenchmarkError(
                f"{len(methods)} --method names for {len(options.results)} folders"
            )
        if len(set(methods)) != len(methods):
            raise BenchmarkError(f"--method names must differ, got {methods}")
        metrics = metric_overrides(options)
        results = dict(zip(methods, options.results, strict=True))
        out = options.out or DEFAULT_REPORT_DIR
        check_writable_folder(out, "--out")
        check_report_replaceable(out)  # before the metric networks load
        summary = evaluate(options.benchmark, results, out, options.metrics_config, metrics).summary
    print(f"Report: {summary.resolve()}")
    return summary


if __name__ == "__main__":
    main()
