"""A benchmark on disk (scenes with ground truth) and the completions a method wrote for it.

Benchmark::

    BENCHMARK/<scene>/ref/*, target/target.png, target/mask.png, target/gt.png

Results (what `realfill.sample`, `CompleteTarget` and the baselines write)::

    RESULTS/<scene>/completions/scores.json          seed, score, rank, file of each candidate
    RESULTS/<scene>/completions/candidates/*.png     every candidate
    RESULTS/<scene>/completions/ranked/rankNN_seedNNNNN.png   the selected ones
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from realfill import layout
from realfill.data import Scene, load_image, load_scene
from realfill.errors import RealFillError
from realfill.evaluation.backbones import MetricSuite
from realfill.io import read_text, write_json


class BenchmarkError(RealFillError):
    """A benchmark folder, or a results folder for it, is missing files or malformed."""


def load_yaml(path: Path) -> object:
    """A YAML file's content; `BenchmarkError` naming the file if it cannot be read, is not
    UTF-8 text or is not valid YAML."""
    try:
        return yaml.safe_load(read_text(path, BenchmarkError))
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())
        raise BenchmarkError(f"{path}: not valid YAML ({reason})") from error


@dataclass
class CandidateResult:
    """One scored candidate of one scene and method."""

    method: str
    scene: str
    seed: int
    score: int | float
    rank: int
    selected: bool
    file: str
    metrics: dict[str, float | None] = field(default_factory=dict)

    def row(self) -> dict:
        """A flat record for CSV and JSON."""
        fixed = {k: getattr(self, k) for k in ("method", "scene", "seed", "score", "rank")}
        return {**fixed, "selected": self.selected, "file": self.file, **self.metrics}


def benchmark_scenes(benchmark: Path) -> list[Path]:
    """Scene folders of a benchmark (sub-folders with a target/ folder), sorted by name."""
    benchmark = Path(benchmark)
    if not benchmark.is_dir():
        raise BenchmarkError(f"{benchmark}: benchmark folder does not exist")
    scenes = sorted(p for p in benchmark.iterdir() if (p / "target").is_dir())
    if not scenes:
        raise BenchmarkError(f"{benchmark}: no scenes (sub-folders with target/) in the benchmark")
    return scenes


def load_evaluation_scene(scene_dir: Path) -> Scene:
    """A scene that must have its ground truth."""
    scene = load_scene(scene_dir)
    if scene.ground_truth is None:
        raise BenchmarkError(f"{scene_dir / 'target' / 'gt.png'}: missing ground truth")
    return scene


SCORE_FIELDS = ("seed", "score", "rank", "file")
"""The fields of every record of scores.json (see `realfill.selection.RankedCandidate`)."""


def whole_number(value: object, minimum: int) -> bool:
    """Whether a JSON value is an integer (not a boolean) of at least `minimum`."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def finite_score(value: object) -> bool:
    """Whether a JSON value is a score: a finite number of at least 0, not a boolean."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and math.isfinite(value) and value >= 0


def inside(folder: Path, relative: object) -> bool:
    """Whether `relative` is a relative path naming a file inside `folder` once resolved
    (links followed): a results folder's records must not reach the ground truth."""
    if not isinstance(relative, str) or not relative or Path(relative).is_absolute():
        return False
    resolved = (folder / relative).resolve()
    return resolved.is_relative_to(folder.resolve()) and resolved.is_file()


def record_problem(record: object, completions: Path) -> str | None:
    """What is wrong with one record of scores.json, or None if nothing is."""
    if not isinstance(record, dict) or not set(SCORE_FIELDS) <= set(record):
        return f"a record is not a mapping of {', '.join(SCORE_FIELDS)}"
    if not whole_number(record["seed"], 0) or not whole_number(record["rank"], 1):
        return f"seed {record['seed']!r}, rank {record['rank']!r}: not integers >= 0 and >= 1"
    if not finite_score(record["score"]):
        return f"seed {record['seed']}: score {record['score']!r} is not a number >= 0"
    if not inside(completions, record["file"]):
        return f"seed {record['seed']}: file {record['file']!r} is not a file in {completions}"
    return None


def scores_problem(records: object, completions: Path) -> str | None:
    """What is wrong with the content of scores.json, or None: it must be a non-empty list
    of records with distinct seeds, ranked 1 to n, each naming a file inside `completions`."""
    if not isinstance(records, list) or not records:
        return "not a non-empty list of seed/score/rank/file records"
    for record in records:
        problem = record_problem(record, completions)
        if problem is not None:
            return problem
    if len({record["seed"] for record in records}) != len(records):
        return "a seed is listed twice"
    if sorted(record["rank"] for record in records) != list(range(1, len(records) + 1)):
        return f"the ranks are not 1 to {len(records)}"
    return None


def read_scores(completions: Path) -> list[dict]:
    """The records of scores.json, checked (`scores_problem`): untrusted input, which must
    name only files inside its own folder. A one-line `BenchmarkError` naming the file if
    it is missing, unreadable or malformed."""
    path = completions / layout.SCORES_FILENAME
    if not path.is_file():
        raise BenchmarkError(f"{path}: missing (no completions; run realfill.sample or a baseline)")
    try:
        records = json.loads(read_text(path, BenchmarkError))
    except ValueError as error:
        raise BenchmarkError(f"{path}: not a scores.json list (invalid JSON: {error})") from None
    problem = scores_problem(records, completions)
    if problem is not None:
        raise BenchmarkError(f"{path}: not a valid scores.json ({problem})")
    return [{field: record[field] for field in SCORE_FIELDS} for record in records]


def selected_seeds(completions: Path) -> set[int]:
    """Seeds of the candidates in ranked/ (the selection)."""
    ranked = completions / layout.RANKED_DIRNAME
    if not ranked.is_dir():
        raise BenchmarkError(f"{ranked}: missing (no selected completions)")
    matches = (layout.RANKED_NAME.fullmatch(p.name) for p in ranked.iterdir())
    return {int(m.group(2)) for m in matches if m}


def scene_results(scene_dir: Path, results: Path) -> tuple[Scene, Path, list[dict], set[int]]:
    """A scene with its ground truth and a method's completions of it (their folder, score
    records and selected seeds), or a one-line error naming what is missing or malformed."""
    scene = load_evaluation_scene(scene_dir)
    completions = Path(results) / scene.name / layout.COMPLETIONS_DIRNAME
    return scene, completions, read_scores(completions), selected_seeds(completions)


def evaluate_scene(
    scene_dir: Path, results: Path, method: str, suite: MetricSuite, progress: bool = True
) -> list[CandidateResult]:
    """Score every candidate a method wrote for one scene against its ground truth."""
    scene, completions, records, selected = scene_results(scene_dir, results)
    out = []
    for record in tqdm(records, desc=f"{method}/{scene.name}", disable=not progress):
        path = completions / record["file"]
        image = load_image(path)
        if image.size != scene.ground_truth.size:
            raise BenchmarkError(
                f"{path}: completion is {image.width}x{image.height}, the ground truth "
                f"{scene.ground_truth.width}x{scene.ground_truth.height}"
            )
        metrics = suite.score(image, scene.ground_truth, scene.mask)
        out.append(
            CandidateResult(
                method,
                scene.name,
                record["seed"],
                record["score"],  # verified matches: an int, kept so in the CSV
                record["rank"],
                record["seed"] in selected,
                str(path),
                metrics,
            )
        )
    return out


def save_candidate_results(results: list[CandidateResult], path: Path) -> None:
    """Cache one scene's scored candidates as JSON (atomic write)."""
    write_json([r.row() for r in results], path)


CANDIDATE_FIELDS = ("method", "scene", "seed", "score", "rank", "selected", "file")
"""The fixed fields of a `CandidateResult` row, in the constructor's order."""


def candidate_result(row: object) -> CandidateResult:
    """One row of `CandidateResult.row` back as a result (a non-finite metric was written as
    a string, see `finite_json`)."""
    if not isinstance(row, dict):
        raise TypeError(f"a row is {type(row).__name__}, not a mapping")
    metrics = {
        k: float(v) if isinstance(v, str) else v
        for k, v in row.items()
        if k not in CANDIDATE_FIELDS
    }
    return CandidateResult(*(row[k] for k in CANDIDATE_FIELDS), metrics=metrics)


def load_candidate_results(path: Path) -> list[CandidateResult]:
    """Scored candidates cached by `save_candidate_results`; `BenchmarkError` naming the file
    if it is missing, unreadable or not such a list."""
    try:
        return [candidate_result(row) for row in json.loads(Path(path).read_text())]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BenchmarkError(f"{path}: not a list of scored candidates ({error})") from None
