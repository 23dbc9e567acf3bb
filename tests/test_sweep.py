"""The LoRA-rank sweep: its command line, expanded as the W&B agent does, runs a fit."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

REPO = Path(__file__).resolve().parents[1]
SWEEP = REPO / "configs" / "sweeps" / "lora_rank.yaml"


def agent_command(sweep: dict, values: dict) -> list[str]:
    """The command `wandb agent` runs for one parameter set: each `${macro}` item of the
    sweep's command replaced by the agent's expansion (flags formatted by wandb itself)."""
    macros = create_sweep_command_args({"args": {k: {"value": v} for k, v in values.items()}})
    macros |= {"env": ["/usr/bin/env"], "interpreter": ["python"], "program": [sweep["program"]]}
    command = []
    for item in map(str, sweep["command"]):
        is_macro = item.startswith("${") and item.endswith("}")
        command += macros[item[2:-1]] if is_macro else [item]
    return command


def test_every_sweep_value_sets_rank_and_alpha_together():
    sweep = yaml.safe_load(SWEEP.read_text())
    assert set(sweep["parameters"]) == {"model.lora"}
    for value in sweep["parameters"]["model.lora"]["values"]:
        assert value["alpha"] == 2 * value["rank"]


@pytest.mark.slow
def test_the_sweep_command_runs_a_fit_with_the_swept_rank(tmp_path):
    sweep = yaml.safe_load(SWEEP.read_text())
    values = {"model.lora": sweep["parameters"]["model.lora"]["values"][0]}
    command = agent_command(sweep, values)
    assert command[:4] == ["/usr/bin/env", "python", "-m", "realfill.fit"]
    assert "--model.lora={'rank': 4, 'alpha': 8}" in command

    # The tiny model in place of SD2, for two steps; relative paths resolve in tmp_path.
    for name in ("configs", "examples"):
        (tmp_path / name).symlink_to(REPO / name)
    short = tmp_path / "short.yaml"
    short.write_text(
        yaml.safe_dump(
            {
                "trainer": {
                    "max_steps": 2,
                    "callbacks": [{"class_path": "realfill.callbacks.SaveLoRA"}],
                },
                "selection": None,
                "data": {"batch_size": 2},
            }
        )
    )
    command = [sys.executable if c == "python" else c for c in command]
    command = [c.replace("configs/realfill.yaml", "configs/tiny.yaml") for c in command]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "WANDB_RUN_ID": "r4"}
    command += ["--config", str(short)]  # last: no end-of-fit sampling
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]

    run_dir = tmp_path / "runs" / "lora_rank" / "r4"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (config["model"]["lora"]["rank"], config["model"]["lora"]["alpha"]) == (4, 8)
    lora = load_file(run_dir / "lora" / "pytorch_lora_weights.safetensors")
    down = [v for k, v in lora.items() if k.endswith(".down.weight")]  # diffusers' names
    assert down and all(w.shape[0] == 4 for w in down)
