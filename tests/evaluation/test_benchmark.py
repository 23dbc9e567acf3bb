"""`python -m realfill.benchmark` on the tiny model over a real scene: report, resumability."""

import shutil
from pathlib import Path

import pytest
import yaml

import realfill.benchmark as benchmark_command
from realfill.benchmark import main

REPO = Path(__file__).resolve().parents[2]
FAST = {
    "trainer": {
        "callbacks": [
            {
                "class_path": "realfill.callbacks.CompleteTarget",
                "init_args": {"num_samples": 2, "keep": 1, "num_inference_steps": 2},
            }
        ]
    },
    "data": {"batch_size": 2},
}


def test_benchmark_completes_evaluates_and_resumes(
    motorcycle_benchmark, tmp_path, monkeypatch, capsys
):
    bench = tmp_path / "benchmark"
    shutil.copytree(motorcycle_benchmark / "motorcycle_inpaint", bench / "motorcycle_inpaint")
    preset = tmp_path / "fast.yaml"
    preset.write_text(yaml.safe_dump(FAST))
    out = tmp_path / "out"
    args = [
        "--config",
        str(REPO / "configs" / "tiny.yaml"),
        "--config",
        str(preset),
        f"--benchmark={bench}",
        f"--out={out}",
        "--methods",
        "realfill",
        "prompt_only",
        "--trainer.max_steps=2",
    ]
    summary = main(args)
    for method, count in (("realfill", 2), ("prompt_only", 2)):
        candidates = out / method / "motorcycle_inpaint" / "completions" / "candidates"
        assert len(list(candidates.glob("seed*.png"))) == count
    lora = out / "prompt_only" / "motorcycle_inpaint" / "run" / "config.yaml"
    assert yaml.safe_load(lora.read_text())["trainer"]["max_steps"] == 0  # no fine-tuning
    text = summary.read_text()
    for method in ("realfill", "prompt_only"):
        assert f"| {method} |" in text
    assert "DreamSim ↓: unavailable" in text
    csv = (summary.parent / "motorcycle_inpaint.csv").read_text().splitlines()
    assert len(csv) == 1 + 2 + 2
    assert (summary.parent / "plots" / "psnr_per_scene.png").is_file()
    assert (summary.parent / "plots" / "score_vs_psnr.png").is_file()

    def fail(*args, **kwargs):
        raise AssertionError("a finished scene was completed again")

    monkeypatch.setattr(benchmark_command, "complete_scene", fail)
    monkeypatch.setattr(benchmark_command, "evaluate_scene", fail)
    capsys.readouterr()
    assert main(args).read_text() == text
    assert capsys.readouterr().out.count("completions exist, skipped") == 2


def test_a_scene_without_ground_truth_stops_before_anything_runs(motorcycle_benchmark, tmp_path):
    bench = tmp_path / "benchmark"
    shutil.copytree(motorcycle_benchmark, bench)
    (bench / "motorcycle_outpaint" / "target" / "gt.png").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(REPO / "configs" / "tiny.yaml"), f"--benchmark={bench}"])
    assert exit_info.value.code == 2
