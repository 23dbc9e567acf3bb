"""`python -m realfill.benchmark --config configs/X.yaml --benchmark DIR [--out DIR]`.

For each scene of the benchmark and each method (RealFill and the baselines): complete the
scene (RealFill: fit, then sample and select), then evaluate it against its ground truth, and
write `<out>/report/`. Resumable scene by scene: a scene whose completions exist is not
completed again, and its scores are reused while the metric settings are unchanged. Other
`--section.key=value` flags go to `realfill.fit` (e.g. `--trainer.max_steps=2`).

`--engine ray` spreads the scenes over the GPUs of this machine, or of a Ray cluster with
`--ray_address auto`, one scene per GPU (see realfill.distributed); evaluation follows in
this process once every scene is done. With `--methods realfill` it fits every scene.
"""

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from realfill import distributed, layout
from realfill.baselines import IMAGE_BASELINES, write_completion
from realfill.baselines.diffusion import run_prompt_only, run_realfill, scene_prompt
from realfill.cli import HelpFormatter, exit_on_user_error
from realfill.evaluation.backbones import MetricSuite
from realfill.evaluation.harness import load_metric_settings, warn_unavailable
from realfill.evaluation.report import check_report_replaceable, write_report
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
REPORT_DIRNAME = "report"
"""The report's folder under the benchmark's `--out`."""
ENGINES = ("local", "ray")
"""Where the scene jobs run: here one after another, or spread over Ray's workers."""
DEFAULT_MAX_RETRIES = 2
"""Runs again of a scene job whose worker process died (out of memory, killed, node lost)."""
FAILED_SCENES_EXIT_CODE = 1
"""Exit code when scene jobs failed on the engine (2 is for bad input)."""
SCORES_CACHE = "metrics.json"
"""Per method and scene: the scored candidates and the metric settings they were scored with."""
CACHE_WRITER = "realfill.benchmark"
"""The `writer` of a scores cache: tells it from a user's metrics.json."""
CACHE_KEYS = ("settings", "unavailable", "completions")
"""What a scores cache records, besides its writer (all it held before it named one)."""


def report_dir(out: Path) -> Path:
    """Where the benchmark's report goes under its `--out`."""
    return Path(out) / REPORT_DIRNAME


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


def complete_job(method: str, options: argparse.Namespace, scene_dir: Path, root: Path) -> str:
    """Complete one scene with one method unless its completions exist; the line to print. The
    job of both engines: the sequential loop and each Ray task."""
    if (root / layout.COMPLETIONS_DIRNAME / layout.SCORES_FILENAME).is_file():
        return f"{scene_dir.name} / {method}: completions exist, skipped"
    start = time.perf_counter()
    complete_scene(method, options, scene_dir, root)
    return f"{scene_dir.name} / {method}: completed in {time.perf_counter() - start:.1f} s"


class ScenesFailed(Exception):
    """Jobs that failed on the engine after their retries: the benchmark writes no report."""


def complete_on_ray(options: argparse.Namespace, scenes: Sequence[Path]) -> None:
    """Run every scene's jobs on Ray (paths made absolute for the workers); `ScenesFailed`
    naming each job that failed, after printing one line for each."""
    remote_options = argparse.Namespace(**vars(options))
    remote_options.config = [distributed.absolute(path) for path in options.config]
    out = distributed.absolute(options.out)
    jobs = [
        distributed.Job(
            f"{scene_dir.name} / {method}",
            (
                method,
                remote_options,
                distributed.absolute(scene_dir),
                out / method / scene_dir.name,
            ),
        )
        for scene_dir in scenes
        for method in options.methods
    ]
    resources = distributed.Resources(
        options.gpus_per_scene, options.cpus_per_scene, options.max_retries
    )
    outcome = distributed.run_on_ray(
        complete_job, jobs, resources, options.ray_address, options.ray_num_cpus
    )
    for name, reason in outcome.failed.items():
        print(f"{name}: failed: {reason}", file=sys.stderr)
    if outcome.failed:
        raise ScenesFailed(
            f"{len(outcome.failed)} of {len(jobs)} scene jobs failed, no report written "
            f"(a re-run retries them and skips the finished ones): {', '.join(outcome.failed)}"
        )


def fingerprint(folder: Path) -> str:
    """A digest of the files under `folder` (names, sizes, modification times): it changes
    whenever they are written again."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        info = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def written_by_the_benchmark(cache: Path) -> bool:
    """Whether a scores cache (`SCORES_CACHE`) is one the benchmark wrote: a JSON mapping
    naming it as the writer, or (written before it named one) holding exactly its keys."""
    try:
        stored = json.loads(cache.read_bytes())
    except (OSError, ValueError):
        return False
    if not isinstance(stored, dict) or cache.is_symlink():
        return False
    return stored.get("writer") == CACHE_WRITER or sorted(stored) == sorted(CACHE_KEYS)


def check_scores_cache(root: Path) -> None:
    """Refuse (`BenchmarkError` naming the file), before anything runs, a `metrics.json` in a
    method's scene folder that the benchmark did not write: it is rewritten whenever the
    completions change. Its `.candidates.json` is the benchmark's if the cache is."""
    cache = root / SCORES_CACHE
    candidates = cache.with_suffix(".candidates.json")
    present = [p for p in (cache, candidates) if p.exists() or p.is_symlink()]
    if present and not written_by_the_benchmark(cache):
        raise BenchmarkError(
            f"{present[0]}: realfill did not write it; move it or choose another --out (the "
            "benchmark keeps its scores there)"
        )


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
    write_json({"writer": CACHE_WRITER, **key}, cache)
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
    check_report_replaceable(report_dir(options.out))
    for scene_dir in scenes:
        for method in options.methods:
            check_scores_cache(options.out / method / scene_dir.name)
    settings = load_metric_settings(options.metrics_config, {})
    if options.engine == "ray":  # before the metric networks load: the GPUs are the jobs'
        complete_on_ray(options, scenes)
    suite = MetricSuite(settings)
    warn_unavailable(suite)
    results: list[CandidateResult] = []
    for scene_dir in scenes:
        for method in options.methods:
            if options.engine == "local":
                root = options.out / method / scene_dir.name
                print(complete_job(method, options, scene_dir, root))
            results += scored(method, scene_dir, options.out, suite)
    return write_report(results, suite.unavailable, report_dir(options.out), suite.settings)


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
    engine = parse.add_argument_group("engine (many scenes at once: see realfill.distributed)")
    engine.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: one scene after another here; ray: scenes spread over Ray's workers",
    )
    engine.add_argument(
        "--ray_address",
        default=None,
        help="Ray cluster to join (auto: the one `ray start` joined here; default: a local Ray)",
    )
    engine.add_argument(
        "--ray_num_cpus",
        type=int,
        default=None,
        help="CPUs of the local Ray this starts (default: every core)",
    )
    engine.add_argument("--gpus_per_scene", type=float, default=1, help="GPUs each scene job holds")
    engine.add_argument("--cpus_per_scene", type=float, default=1, help="CPUs each scene job holds")
    engine.add_argument(
        "--max_retries",
        type=int,
        default=DEFAULT_MAX_RETRIES,
        help="times a scene job whose worker died is run again",
    )
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
    if options.engine != "ray" and (options.ray_address or options.ray_num_cpus):
        parser().error("--ray_address and --ray_num_cpus need --engine ray")
    if options.ray_address and options.ray_num_cpus:
        parser().error(
            "--ray_num_cpus sizes the local Ray: the cluster of --ray_address has its own"
        )
    options.fit_args = fit_args
    with exit_on_user_error():
        try:
            summary = run(options)
        except ScenesFailed as failure:
            print(f"realfill: error: {failure}", file=sys.stderr)
            raise SystemExit(FAILED_SCENES_EXIT_CODE) from None
    print(f"Report: {summary.resolve()}")
    return summary


if __name__ == "__main__":
    main()
