"""RealBench-style evaluation: masked PSNR/SSIM/LPIPS and whole-image DreamSim/DINO/CLIP of
the completions a method wrote, per candidate, per scene and over a benchmark."""

from realfill.evaluation.backbones import METRICS, MetricSettings, MetricSuite
from realfill.evaluation.report import write_report
from realfill.evaluation.results import BenchmarkError, CandidateResult, evaluate_scene

__all__ = [
    "METRICS",
    "BenchmarkError",
    "CandidateResult",
    "MetricSettings",
    "MetricSuite",
    "evaluate_scene",
    "write_report",
]
