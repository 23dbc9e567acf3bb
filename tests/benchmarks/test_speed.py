"""The speed benchmark runs at tiny scale on a CPU, so it cannot rot between GPU runs."""

import json

import pytest
import torch._inductor.config

pytestmark = pytest.mark.slow  # benchmark smoke tests: python -m pytest -m slow


def test_tiny_benchmark_writes_json_and_table(tmp_path, load_script):
    speed = load_script("speed")
    results = speed.main(
        ["--scale", "tiny", "--steps", "1", "--num_workers", "0", "--profile"]
        + ["--out", str(tmp_path)]
    )
    (json_file,) = tmp_path.glob("*.json")
    (table,) = tmp_path.glob("*.md")
    assert json.loads(json_file.read_text()) == json.loads(json.dumps(results))
    assert "not meaningful" in table.read_text()
    for key in ("training", "training_24gb", "sampling"):
        assert results[key]["mfu"] > 0
    # the 24 GB profile's useful work: its batch's, without checkpointing's recomputation
    # (the text encoder's fixed cost keeps it just above half of the batch of 4's)
    ratio = results["training_24gb"]["tflop_per_step"] / results["training"]["tflop_per_step"]
    assert 0.5 <= ratio < 0.51  # with the recomputed forward counted: 0.58
    assert results["sampling"]["candidates_per_minute"] > 0
    assert results["sampling"]["size"] == "64x64"  # the square scene: resolution x resolution
    assert results["sampling_unmerged"]["candidates_per_minute"] > 0
    assert results["data"]["samples_per_second"] > 0
    for key in ("training", "sampling"):
        profile = results[key]["profile"]
        assert profile["operator_calls"] > 0 and (tmp_path / profile["table"]).is_file()


def test_compiled_variants_are_timed_and_tabled(tmp_path, load_script):
    speed = load_script("speed")
    results = speed.main(
        ["--scale", "tiny", "--steps", "1", "--num_workers", "0", "--only"]
        + ["--compile", "regional", "--compile_backend", "eager"]
        + ["--compile_modes", "reduce-overhead"]  # no CUDA graphs on a CPU: the wiring only
        + ["--inductor", "force_layout_optimization=True", "--out", str(tmp_path)]
    )
    assert results["inductor_config"] == {"force_layout_optimization": True}
    training = results["training_compiled_regional_reduce_overhead"]
    assert training["tflop_per_step"] == results["training"]["tflop_per_step"]
    assert training["first_step_seconds"] > 0 and training["seconds_per_step"] > 0
    (table,) = tmp_path.glob("*.md")
    assert "training, torch.compile: UNet (regional reduce overhead)" in table.read_text()
    assert "sampling_unmerged" not in results and "data" not in results
    (json_file,) = tmp_path.glob("*.json")  # saved as soon as it is known
    assert "end_to_end_minutes" in json.loads(json_file.read_text())
    assert "{'force_layout_optimization': True}" in table.read_text()
    assert not torch._inductor.config.force_layout_optimization  # patched for the run only


@pytest.mark.parametrize("setting", ["no_such_setting=1", "force_layout_optimization"])
def test_unknown_or_malformed_inductor_setting_is_a_usage_error(load_script, setting, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script("speed").parse_args(["--inductor", setting])
    assert exit_info.value.code == 2
    assert "argument --inductor" in capsys.readouterr().err


def test_sampling_only_skips_training_and_times_compiled_sampling(tmp_path, load_script):
    speed = load_script("speed")
    results = speed.main(
        ["--scale", "tiny", "--steps", "1", "--num_workers", "0", "--sampling_only"]
        + ["--only", "data", "--compile", "sampling", "--compile_backend", "eager"]
        + ["--out", str(tmp_path)]
        + ["--keep_aspect"]
    )
    assert "training" not in results and "end_to_end_minutes" not in results
    assert results["sampling"]["size"] == "96x64"  # the example's own 332x224, scaled
    sampling = results["sampling_compiled_whole"]
    assert sampling["tflop_per_candidate"] == results["sampling"]["tflop_per_candidate"]
    assert sampling["first_call_seconds"] > 0 and sampling["candidates_per_minute"] > 0
    (table,) = tmp_path.glob("*.md")
    assert "Sampling only." in table.read_text()
    assert "samples/s delivered |" in table.read_text()  # nothing consumed: no training
    assert "sampling, torch.compile: UNet (whole)" in table.read_text()
    with pytest.raises(SystemExit):
        speed.main(["--scale", "tiny", "--sampling_only", "--compile", "whole"])
