"""`python -m realfill.benchmark --config configs/X.yaml --benchmark DIR [--out DIR]`.

For each scene of the benchmark and each method (RealFill and the baselines): complete the
scene (RealFill: fit, then sample and select), then evaluate it against its ground truth, and
write `<out>/report/`. Resumable scene by scene: a scene whose completions exist is not
completed again, and its scores are reused while the metric settings are unchanged. Other
`--section.key=value` flags go to `realfill.fit` (e.g. `--trainer.max_steps=2`).
"""

import argparse
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from realfill import layout
from realfill.baselines import IMAGE_BASELINES, write_completion
from realfill.baselines.diffusion import run_prompt_only, run_realfill, scene_prompt
from realfill.cli import HelpFormatter, exit_on_user_error
from realfill.evaluation.backbones import MetricSuite
from realfill.evaluation.harness import load_metric_settings, warn_unavailable
from realfill.evaluation.report import write_report
from realfill.evaluation.results import (
    BenchmarkError,
    CandidateResult,
    benchmark_scenes,
    evaluate_scene,
    load_candidate_results,
    load_evaluation_scene,
    load_yaml,
    save_candidate_results,
)
from realfill.io import check_writable_folder, write_json

METHODS = ("realfill", "prompt_only", "geometric", "opencv")
"""Every method the benchmark can run, in report order."""
FIT_METHODS = ("realfill", "prompt_only")
"""The methods that run realfill.fit, and so take its `--section.key=value` flags."""
SCORES_CACHE = "metrics.json"
"""Per method and scene: the scored candidates and the metric settings they were scored with."""


def complete_scene(method: str, options: argparse.Namespace, scene_dir: Path, root: Path) -> None:
    """Write `<root>/completions/` for one method on one scene."""
    if method in IMAGE_BASELINES:
        scene = load_evaluation_scene(scene_dir)
        write_completion(
            root / layout.COMPLETIONS_DIRNAME, IMAGE_BASELINES[method]().complete(scene), scene
        )
        return
    sampling = {k: getattr(options, k) for k in ("num_samples", "keep", "num_inference_steps")}
    run: Callable = run_realfill if method == "realfill" else run_prompt_only
    run(options.config, scene_dir, root, options.fit_args, sampling)


def fingerprint(folder: Path) -> str:
    """A digest of the files under `folder` (names, sizes, modification times): it changes
    whenever they are written again."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        info = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cached_scores(cache: Path, key: dict) -> list[CandidateResult] | None:
    """The scored candidates cached beside `cache` if it was written for `key`; None if not,
    or if either file is missing or damaged (an interrupted or edited cache is a miss)."""
    try:
        stored = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or {k: stored.get(k) for k in key} != key:
        return None
    try:
        return load_candidate_results(cache.with_suffix(".candidates.json"))
    except BenchmarkError:
        return None


def scored(method: str, scene_dir: Path, out: Path, suite: MetricSuite) -> list[CandidateResult]:
    """The scene's scored candidates: from the cache if scored with the same settings and the
    completions have not been written again since."""
    root = out / method / scene_dir.name
    cache = root / SCORES_CACHE
    key = {
        "settings": asdict(suite.settings),
        "unavailable": sorted(suite.unavailable),
        "completions": fingerprint(root / layout.COMPLETIONS_DIRNAME),
    }
    cached = cached_scores(cache, key)
    if cached is not None:
        return cached
    results = evaluate_scene(scene_dir, out / method, method, suite)
    save_candidate_results(results, cache.with_suffix(".candidates.json"))
    write_json(key, cache)
    return results


def run(options: argparse.Namespace) -> Path:
    """Complete and evaluate every scene with every method, then write the report."""
    for path in options.config:
        if not Path(path).is_file():
            raise BenchmarkError(f"{path}: config not found")
        load_yaml(path)
    scenes = benchmark_scenes(options.benchmark)
    for scene_dir in scenes:
        load_evaluation_scene(scene_dir)  # every scene is checked before anything runs
        if "prompt_only" in options.methods:
            scene_prompt(scene_dir)
    check_writable_folder(options.out, "--out")
    suite = MetricSuite(load_metric_settings(options.metrics_config, {}))
    warn_unavailable(suite)
    results: list[CandidateResult] = []
    for scene_dir in scenes:
        for method in options.methods:
            root = options.out / method / scene_dir.name
            if (root / layout.COMPLETIONS_DIRNAME / layout.SCORES_FILENAME).is_file():
                print(f"{scene_dir.name} / {method}: completions exist, skipped")
            else:
                start = time.perf_counter()
                complete_scene(method, options, scene_dir, root)
                elapsed = time.perf_counter() - start
                print(f"{scene_dir.name} / {method}: completed in {elapsed:.1f} s")
            results += scored(method, scene_dir, options.out, suite)
    return write_report(results, suite.unavailable, options.out / "report")


def parser() -> argparse.ArgumentParser:
    """The command line; unknown `--section.key=value` flags are passed to realfill.fit."""
    parse = argparse.ArgumentParser(
        prog="python -m realfill.benchmark",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    parse.add_argument(
        "--config", type=Path, action="append", required=True, help="fit config(s), stacked"
    )
    parse.add_argument("--benchmark", type=Path, required=True, help="benchmark folder")
    parse.add_argument("--out", type=Path, default=Path("runs/benchmark"), help="output folder")
    parse.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS), help="methods to run"
    )
    parse.add_argument(
        "--num_samples",
        type=int,
        default=None,
        help="candidates per scene (default: the config's selection: section)",
    )
    parse.add_argument(
        "--keep",
        type=int,
        default=None,
        help="selected candidates per scene (default: the config's)",
    )
    parse.add_argument(
        "--num_inference_steps",
        type=int,
        default=None,
        help="sampling steps (default: the config's)",
    )
    parse.add_argument("--metrics_config", type=Path, default=None, help="metric settings YAML")
    return parse


def main(args: Sequence[str] | None = None) -> Path:
    """Run the benchmark and print where the report is; user errors exit with code 2."""
    options, fit_args = parser().parse_known_args(args)
    bad = [arg for arg in fit_args if not arg.startswith("--")]
    if bad:
        parser().error(f"unrecognised arguments: {' '.join(bad)}")
    if fit_args and not set(options.methods) & set(FIT_METHODS):
        parser().error(
            f"{' '.join(fit_args)}: realfill.fit flags, but no method run here fits "
            f"({', '.join(FIT_METHODS)})"
        )
    options.fit_args = fit_args
    with exit_on_user_error():
        summary = run(options)
    print(f"Report: {summary.resolve()}")
    return summary


if __name__ == "__main__":
    main()
