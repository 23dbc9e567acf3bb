"""What the commands print: realfill's own lines, its progress bars and genuine warnings, and
none of the third-party notices that tell a user nothing (Lightning's tips and device lines,
"Total FLOPs: 0", wandb's deprecation and git warnings, tokenizer truncation, ...)."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_SCENE = REPO / "examples" / "motorcycle"
BENCHMARK_SHORT_SIDE = 96
"""The benchmark scenes' shorter side: small, for a quick tiny run."""

OURS = (
    "Model: ",
    "LoRA: ",
    "Sampled and ranked ",
    "Completions: ",
    "Best completion: ",
    "No candidate's fill matched the references",
    "Run dir: ",
    "Report: ",
    "realfill: warning: ",  # ours: e.g. a metric unavailable offline, with the reason
)
"""How realfill's own lines start."""

ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")
"""Terminal colour codes (wandb colours its prefix)."""

PROGRESS_BAR = re.compile(r"\d+%\|.*\|")
"""A tqdm bar's frame, as each bar prints it."""

SCENE_DONE = re.compile(r"^\S+ / \S+: completed in [\d.]+ s$")
"""The benchmark's line for each finished scene and method."""

WANDB_OFFLINE = ("wandb:",)
"""wandb's own account of an offline run (where it is saved, how to sync): genuine."""
DOWNLOADS = ('Downloading: "',)
"""torch.hub's line before a download's progress bar (the eval extra's LPIPS weights): where
from and where to, genuine whether the download then succeeds or the metric is unavailable."""


def unexpected_lines(output: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """The lines of a command's output (stdout and stderr) that are none of realfill's, its
    progress bars, or `allowed` prefixes."""
    plain = ANSI_STYLE.sub("", output).replace("\r", "\n")
    lines = [line.strip() for line in plain.splitlines()]
    return [
        line
        for line in lines
        if line
        and not line.startswith(OURS + allowed)
        and not PROGRESS_BAR.search(line)
        and not SCENE_DONE.match(line)
    ]


FAST = ("--trainer.max_steps=2", "--selection.num_samples=2", "--selection.num_inference_steps=2")


@pytest.mark.slow
@pytest.mark.parametrize(
    "configs",
    [("configs/tiny.yaml", "configs/logger/wandb.yaml"), ("configs/tiny_sdxl.yaml",)],
    ids=["sd-wandb", "sdxl"],
)
def test_a_tiny_fit_prints_nothing_but_its_own_lines(tmp_path, run_command, configs):
    run = run_command(
        "realfill.fit",
        *(f"--config={config}" for config in configs),
        f"--data.scene_dir={EXAMPLE_SCENE}",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        *FAST,
    )
    assert run.returncode == 0, run.stderr
    assert unexpected_lines(run.stdout + run.stderr, WANDB_OFFLINE) == []


@pytest.mark.slow
def test_a_tiny_benchmark_prints_nothing_but_its_own_lines(
    tmp_path, run_command, motorcycle_builder
):
    motorcycle_benchmark = tmp_path / "benchmark"
    motorcycle_builder.build_benchmark(motorcycle_benchmark, BENCHMARK_SHORT_SIDE, jpeg_quality=90)
    run = run_command(
        "realfill.benchmark",
        "--config=configs/tiny.yaml",
        f"--benchmark={motorcycle_benchmark}",
        f"--out={tmp_path / 'out'}",
        "--methods",
        "realfill",
        "prompt_only",
        "opencv",
        "--num_samples=2",
        "--trainer.max_steps=2",
    )
    assert run.returncode == 0, run.stderr
    assert unexpected_lines(run.stdout + run.stderr, DOWNLOADS) == []


def test_a_third_party_notice_is_unexpected():
    assert unexpected_lines("Seed set to 0\nModel: tiny\n 50%|#####     | 1/2") == ["Seed set to 0"]
