"""The end-to-end benchmark runs through `realfill.fit` on the tiny model, so it cannot rot."""

import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # benchmark smoke tests: python -m pytest -m slow

REPO = Path(__file__).resolve().parents[2]


def test_end_to_end_times_training_and_selection_and_extrapolates(
    tmp_path, monkeypatch, load_script
):
    tiny = {
        "trainer": {
            "accelerator": "cpu",
            "precision": "32-true",
            "benchmark": False,
            "max_steps": 4,
            "default_root_dir": str(tmp_path / "run"),
            "callbacks": [
                {"class_path": "realfill.callbacks.SaveLoRA"},
                {"class_path": "stage_clock.StageClock", "init_args": {"warmup_steps": 2}},
            ],
        },
        "selection": {"num_samples": 2, "keep": 1, "num_inference_steps": 2},
        "model": {
            "base_model": {"class_path": "realfill.modules.TinyStableDiffusionInpainting"},
            "compile": {"denoiser": False, "encoders": False},
        },
        "data": {"resolution": 32, "batch_size": 2, "num_workers": 0},
    }
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny))
    monkeypatch.setenv("OUT", str(tmp_path / "out"))
    monkeypatch.chdir(REPO)
    results = load_script("end_to_end").main(["--config", str(config)])
    assert json.loads((tmp_path / "out" / "end_to_end.json").read_text()) == results
    assert results["training_steps"] == 4 and results["num_candidates"] == 2
    assert results["completion_size"] == "32x32"  # the example's square, at the resolution
    assert 0 < results["seconds_per_steady_step"] < results["seconds_total"]
    assert results["seconds_selection"] > 0
    stages = results["seconds_selection_stages"]
    assert set(stages) == {"sampling_and_compositing", "ranking", "writing"}
    assert 0 < sum(stages.values()) <= results["seconds_selection"]
    selection_per_candidate = results["seconds_selection"] / 2
    assert results["estimated_minutes_paper_run"] * 60 > 2000 * results["seconds_per_steady_step"]
    assert results["estimated_minutes_paper_run"] * 60 > 64 * selection_per_candidate
    assert (tmp_path / "run" / "lora" / "pytorch_lora_weights.safetensors").is_file()
    marks = json.loads((tmp_path / "out" / "end_to_end_marks.json").read_text())
    reached = marks["seconds_since_train_start"]
    assert list(reached) == ["train_start", "steady_start", "train_end", "selection_end"]
    assert marks["steady_steps"] == 2 and reached["train_end"] < reached["selection_end"]
