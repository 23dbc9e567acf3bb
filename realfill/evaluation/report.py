"""Aggregate scored candidates and write the report: CSVs, a markdown table, JSON and plots."""

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from realfill.evaluation.backbones import HIGHER_IS_BETTER, LABELS, METRICS, MetricSettings
from realfill.evaluation.published import PUBLISHED, PUBLISHED_SOURCES
from realfill.evaluation.results import CandidateResult
from realfill.io import check_replaceable, staged_directory, write_json, write_text

UNAVAILABLE = "unavailable"
"""How a metric whose network could not be loaded is written, instead of a number."""
DECIMALS = {"psnr": 2}
"""Decimals shown per metric in the table; the others get `DEFAULT_DECIMALS`."""
DEFAULT_DECIMALS = 3
"""Decimals of the [0, 1]-ranged metrics."""
SUMMARY_MARKDOWN, SUMMARY_JSON, PLOTS_DIRNAME = "summary.md", "summary.json", "plots"
"""A report folder's summary table, its data and its plots' folder."""
GEOMETRIC, FLOOR = "geometric", "opencv"
"""The geometric reference baseline and the classical single-image floor it must beat."""

Means = dict[str, float | None]


def mean(values: Sequence[float | None]) -> float | None:
    """Arithmetic mean; None if any value is unavailable (None) or there are none."""
    if not values or any(v is None for v in values):
        return None
    return math.fsum(values) / len(values)


def scene_means(results: Sequence[CandidateResult]) -> dict[tuple[str, str], Means]:
    """Per (method, scene): each metric averaged over the selected candidates (all of them if
    none is marked selected)."""
    groups: dict[tuple[str, str], list[CandidateResult]] = defaultdict(list)
    for result in results:
        groups[(result.method, result.scene)].append(result)
    means = {}
    for key, group in groups.items():
        chosen = [r for r in group if r.selected] or group
        means[key] = {m: mean([r.metrics.get(m) for r in chosen]) for m in METRICS}
    return means


def method_means(per_scene: dict[tuple[str, str], Means]) -> dict[str, Means]:
    """Per method: each metric averaged over its scenes (scenes weigh equally, as in Table 1)."""
    groups: dict[str, list[Means]] = defaultdict(list)
    for (method, _), values in per_scene.items():
        groups[method].append(values)
    return {
        method: {m: mean([v[m] for v in rows]) for m in METRICS} for method, rows in groups.items()
    }


def format_value(metric: str, value: float | None) -> str:
    """A metric value for a table: 'unavailable', 'inf' or a rounded number."""
    if value is None:
        return UNAVAILABLE
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{DECIMALS.get(metric, DEFAULT_DECIMALS)}f}"


def csv_value(value: float | None) -> str:
    """A metric value for the per-candidate CSV: 'unavailable', or the number at full
    precision (the tables round; the CSV is the data to compute with)."""
    return UNAVAILABLE if value is None else repr(value)


def markdown_table(rows: dict[str, Means], first_column: str) -> str:
    """A markdown table, one row per key, metric columns in the paper's order."""
    header = f"| {first_column} | " + " | ".join(LABELS[m] for m in METRICS) + " |"
    rule = "|---" * (len(METRICS) + 1) + "|"
    lines = [header, rule]
    for name, values in rows.items():
        cells = " | ".join(format_value(m, values[m]) for m in METRICS)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def floor_comparison(per_scene: dict[tuple[str, str], Means]) -> list[str]:
    """For each scene with both, whether the geometric baseline's masked PSNR beats the
    OpenCV floor's."""
    lines = []
    for (method, scene), values in sorted(per_scene.items()):
        floor = per_scene.get((FLOOR, scene))
        if method != GEOMETRIC or floor is None:
            continue
        ours, theirs = values["psnr"], floor["psnr"]
        beats = ours is not None and theirs is not None and ours > theirs
        lines.append(
            f"- {scene}: geometric baseline masked PSNR {format_value('psnr', ours)} dB vs "
            f"OpenCV floor {format_value('psnr', theirs)} dB: "
            f"{'beats the floor' if beats else 'does NOT beat the floor'}"
        )
    return lines


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties ranked by their mean); None where it is undefined
    (fewer than three pairs, or either side constant)."""
    import torch
    from torchmetrics.functional import spearman_corrcoef

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearman_corrcoef(torch.tensor(x).double(), torch.tensor(y).double()))


def ranking_quality(results: Sequence[CandidateResult]) -> list[dict]:
    """Per (scene, method) whose candidates were ranked (some selected, not all): how the
    correspondence score agrees with masked PSNR over all candidates (Spearman's rho, the
    paper's Figure 6 claim) and what selecting gains (mean PSNR of the selected candidates
    minus that of all). Candidates with an infinite PSNR (identical pixels) are left out."""
    groups: dict[tuple[str, str], list[CandidateResult]] = defaultdict(list)
    for result in results:
        groups[(result.scene, result.method)].append(result)
    rows = []
    for (scene, method), group in sorted(groups.items()):
        scored = [r for r in group if math.isfinite(r.metrics.get("psnr") or math.nan)]
        selected = [r for r in scored if r.selected]
        if not selected or len(selected) == len(scored):
            continue
        all_mean = mean([r.metrics["psnr"] for r in scored])
        selected_mean = mean([r.metrics["psnr"] for r in selected])
        rows.append(
            {
                "scene": scene,
                "method": method,
                "candidates": len(scored),
                "selected": len(selected),
                "spearman_score_psnr": spearman(
                    [float(r.score) for r in scored], [r.metrics["psnr"] for r in scored]
                ),
                "psnr_all": all_mean,
                "psnr_selected": selected_mean,
                "selection_gain_db": selected_mean - all_mean,
            }
        )
    return rows


def ranking_table(rows: Sequence[dict]) -> str:
    """The ranking rows as a markdown table."""
    lines = [
        "| scene / method | candidates | selected | Spearman (score, PSNR) | PSNR all | "
        "PSNR selected | gain (dB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        rho = row["spearman_score_psnr"]
        lines.append(
            f"| {row['scene']} / {row['method']} | {row['candidates']} | {row['selected']} | "
            f"{'undefined' if rho is None else f'{rho:.3f}'} | {row['psnr_all']:.2f} | "
            f"{row['psnr_selected']:.2f} | {row['selection_gain_db']:+.2f} |"
        )
    return "\n".join(lines)


def candidates_csv(results: Sequence[CandidateResult]) -> str:
    """One CSV row per candidate: method, seed, score, rank, selected, file, metrics."""
    buffer = io.StringIO()
    columns = ["method", "scene", "seed", "score", "rank", "selected", "file", *METRICS]
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for result in results:
        row = result.row()
        writer.writerow({**row, **{m: csv_value(row.get(m)) for m in METRICS}})
    return buffer.getvalue()


def summary_markdown(
    results: Sequence[CandidateResult],
    unavailable: dict[str, str],
    plots: Sequence[str],
    protocol: str,
) -> str:
    """The report: the protocol, the benchmark table, the per-scene table, unavailable
    metrics, the geometric-vs-floor check, the ranking's quality, the published RealBench
    numbers to read it against, and the plots."""
    per_scene = scene_means(results)
    by_scene = {
        f"{s} / {m}": per_scene[(m, s)] for m, s in sorted(per_scene, key=lambda k: k[::-1])
    }
    directions = ", ".join(
        f"{LABELS[m].split()[0]} {'higher' if HIGHER_IS_BETTER[m] else 'lower'}" for m in METRICS
    )
    parts = [
        "# Evaluation report",
        "",
        f"{protocol} Better: {directions}. Each scene's value is the mean over its selected "
        "candidates (ranked/); the benchmark's is the mean over scenes.",
        "",
        "## Benchmark",
        "",
        markdown_table(method_means(per_scene), "method"),
        "",
        "## Per scene",
        "",
        markdown_table(by_scene, "scene / method"),
    ]
    if unavailable:
        parts += ["", "## Unavailable metrics", ""]
        parts += [f"- {LABELS[m]}: {UNAVAILABLE} ({reason})" for m, reason in unavailable.items()]
    comparison = floor_comparison(per_scene)
    if comparison:
        parts += ["", "## Geometric baseline vs the OpenCV floor (masked PSNR)", "", *comparison]
    ranking = ranking_quality(results)
    if ranking:
        parts += [
            "",
            "## Ranking: correspondence score vs masked PSNR, over all candidates",
            "",
            ranking_table(ranking),
        ]
    parts += ["", "## Published RealBench numbers", "", f"{PUBLISHED_SOURCES}.", ""]
    parts += [markdown_table(PUBLISHED, "published")]
    if plots:
        parts += ["", "## Plots", "", *[f"![{Path(p).stem}]({p})" for p in plots]]
    return "\n".join(parts) + "\n"


REPORT_PATTERNS = ("*.csv", SUMMARY_MARKDOWN, SUMMARY_JSON, f"{PLOTS_DIRNAME}/*.png")
"""What a report folder held before realfill wrote manifests: such a folder holding anything
else (the user's own summary or CSV included, at any depth) is not replaced."""


SUMMARY_KEYS = frozenset({"methods", "scenes", "unavailable"})
"""Keys every summary.json realfill wrote holds."""


def legacy_report(out: Path) -> bool:
    """Whether a report folder without a manifest is one realfill wrote: its summary.json
    is realfill's (a user's summary.md and CSVs alone are not)."""
    try:
        summary = json.loads((Path(out) / SUMMARY_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and set(summary) >= SUMMARY_KEYS


def check_report_replaceable(out: Path) -> None:
    """Refuse (`OutputError` naming the file), before any scoring, a report folder holding
    files realfill did not write there: the report replaces the folder as a whole."""
    check_replaceable(Path(out), REPORT_PATTERNS, legacy_report)


def write_report(
    results: Sequence[CandidateResult],
    unavailable: dict[str, str],
    out: Path,
    settings: MetricSettings,
) -> Path:
    """Write `<out>/<scene>.csv` per scene, `summary.md`, `summary.json` and `plots/`,
    replacing the folder as a whole once all is written (see `staged_directory`); return the
    markdown file's path."""
    from realfill.evaluation.plots import write_plots

    out = Path(out)
    by_scene: dict[str, list[CandidateResult]] = defaultdict(list)
    for result in results:
        by_scene[result.scene].append(result)
    with staged_directory(out, REPORT_PATTERNS, legacy_report) as staging:
        for scene, rows in by_scene.items():
            write_text(candidates_csv(rows), staging / f"{scene}.csv")
        plots = write_plots(results, scene_means(results), staging / PLOTS_DIRNAME)
        relative = [str(Path(p).relative_to(staging)) for p in plots]
        summary = summary_markdown(results, unavailable, relative, settings.protocol)
        write_text(summary, staging / SUMMARY_MARKDOWN)
        per_scene = scene_means(results)
        data = {
            "methods": method_means(per_scene),
            "scenes": [{"method": m, "scene": s, **v} for (m, s), v in per_scene.items()],
            "unavailable": unavailable,
            "protocol": {"lpips_region": settings.lpips_region, "text": settings.protocol},
            "floor_comparison": floor_comparison(per_scene),
            "ranking": ranking_quality(results),
        }
        write_json(data, staging / SUMMARY_JSON)
    return out / SUMMARY_MARKDOWN
