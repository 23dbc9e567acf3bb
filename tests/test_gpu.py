"""The paths that only run on a CUDA GPU: a bf16 fit that samples in bf16, CUDA-graph training
steps, 8-bit Adam. Marked `gpu`: skipped without CUDA, selected with `-m gpu` on a GPU."""

import csv
import json
import math
from pathlib import Path

import pytest
from safetensors.torch import load_file

from realfill import layout

pytestmark = pytest.mark.gpu

GPU_FIT = (
    "--trainer.accelerator=gpu",
    "--trainer.devices=1",
    "--trainer.precision=bf16-mixed",
    "--trainer.max_steps=3",
    "--trainer.log_every_n_steps=1",
    "--data.batch_size=2",
)
"""The tiny config on one GPU in bf16-mixed: training and the end-of-fit sampling."""


def losses(run_dir: Path) -> list[float]:
    """The training losses the run logged, one per step."""
    (metrics,) = run_dir.glob("logs/*/metrics.csv")
    with metrics.open() as rows:
        return [float(row["train/loss"]) for row in csv.DictReader(rows) if row["train/loss"]]


def lora_b_weights_moved(run_dir: Path) -> bool:
    """Whether training moved the adapters off their start (peft starts every B at zero)."""
    (weights,) = (run_dir / layout.LORA_DIRNAME).glob("*.safetensors")
    tensors = load_file(weights)
    return any(
        t.abs().sum() > 0
        for name, t in tensors.items()
        if "lora_B" in name or name.endswith(".up.weight")
    )


def test_a_bf16_fit_trains_and_samples_its_completions_on_the_gpu(fit_tiny):
    run_dir = fit_tiny("run", extra=GPU_FIT)
    assert all(math.isfinite(loss) for loss in losses(run_dir))
    assert lora_b_weights_moved(run_dir)
    scores = json.loads((run_dir / layout.COMPLETIONS_DIRNAME / layout.SCORES_FILENAME).read_text())
    assert len(scores) == 16
    assert all((run_dir / layout.COMPLETIONS_DIRNAME / s["file"]).is_file() for s in scores)


def test_cuda_graph_steps_train_the_lora(fit_tiny):
    extra = (*GPU_FIT, "--model.compile.denoiser=true", "--model.compile.mode=reduce-overhead")
    run_dir = fit_tiny("run", extra=extra)
    assert all(math.isfinite(loss) for loss in losses(run_dir))
    assert lora_b_weights_moved(run_dir)


def test_eight_bit_adam_trains_the_lora_on_the_gpu(fit_tiny):
    pytest.importorskip("bitsandbytes")
    run_dir = fit_tiny("run", extra=(*GPU_FIT, "--model.optimization.optimizer=adamw8bit"))
    assert all(math.isfinite(loss) for loss in losses(run_dir))
    assert lora_b_weights_moved(run_dir)
