"""Report plots (matplotlib, headless): per-scene bars per metric, and the correspondence
score against each metric per candidate (whether the score predicts quality, as the paper's
Figure 6 shows)."""

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from realfill.evaluation.backbones import LABELS, METRICS  # noqa: E402
from realfill.evaluation.results import CandidateResult  # noqa: E402
from realfill.io import staged_file  # noqa: E402

FIGURE_SIZE = (7.0, 4.0)
"""Inches (width, height) of every plot."""
DPI = 110
"""Resolution of the saved plots."""
BAR_GROUP_WIDTH = 0.8
"""Fraction of each scene's slot taken by its group of bars (one bar per method)."""


def save_figure(figure: plt.Figure, path: Path) -> None:
    """Save a figure as PNG through a temporary file and an atomic rename, then close it."""
    try:
        with staged_file(path) as staging:
            figure.savefig(staging, dpi=DPI, bbox_inches="tight", format="png")
    finally:
        plt.close(figure)


def finite(value: float | None) -> bool:
    """Whether a value can be drawn (available and finite)."""
    return value is not None and math.isfinite(value)


def bars(per_scene: dict[tuple[str, str], dict], metric: str, path: Path) -> bool:
    """Grouped bars of one metric: scenes on x, one bar per method; False if nothing to draw."""
    scenes = sorted({scene for _, scene in per_scene})
    methods = sorted({method for method, _ in per_scene})
    if not any(finite(v[metric]) for v in per_scene.values()):
        return False
    figure, axes = plt.subplots(figsize=FIGURE_SIZE)
    width = BAR_GROUP_WIDTH / len(methods)
    for i, method in enumerate(methods):
        heights = [per_scene.get((method, s), {}).get(metric) for s in scenes]
        xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(scenes))]
        axes.bar(xs, [h if finite(h) else 0.0 for h in heights], width, label=method)
    axes.set_xticks(range(len(scenes)), scenes)
    axes.set_ylabel(LABELS[metric])
    axes.set_title(f"{LABELS[metric]} per scene (mean of the selected candidates)")
    axes.legend()
    save_figure(figure, path)
    return True


def scatter(results: Sequence[CandidateResult], metric: str, path: Path) -> bool:
    """Correspondence score (x) against one metric (y), one point per candidate."""
    points = [r for r in results if finite(r.metrics.get(metric))]
    if not points:
        return False
    figure, axes = plt.subplots(figsize=FIGURE_SIZE)
    for key in sorted({(r.method, r.scene) for r in points}):
        group = [r for r in points if (r.method, r.scene) == key]
        axes.scatter(
            [r.score for r in group], [r.metrics[metric] for r in group], label=" / ".join(key)
        )
    axes.set_xlabel("correspondence score (verified matches)")
    axes.set_ylabel(LABELS[metric])
    axes.set_title(f"Does the correspondence score predict {LABELS[metric].split()[0]}?")
    axes.legend(fontsize="small")
    save_figure(figure, path)
    return True


def write_plots(
    results: Sequence[CandidateResult], per_scene: dict[tuple[str, str], dict], out: Path
) -> list[Path]:
    """Every plot with something to draw, for every available metric; their paths."""
    written = []
    for metric in METRICS:
        path = out / f"{metric}_per_scene.png"
        if bars(per_scene, metric, path):
            written.append(path)
        path = out / f"score_vs_{metric}.png"
        if scatter(results, metric, path):
            written.append(path)
    return written
