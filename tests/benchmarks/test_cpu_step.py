"""The CPU step benchmark runs on the tiny config, so it cannot rot between measurements."""

import json
from pathlib import Path

import pytest

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


@pytest.mark.slow
def test_every_precision_and_layout_is_timed_on_the_same_work(tmp_path, load_script):
    cpu_step = load_script("cpu_step")
    rows = cpu_step.main(["--config", str(TINY), "--steps", "1", "--out", str(tmp_path)])
    variants = {(row["precision"], row["channels_last"]) for row in rows}
    assert variants == {(p, c) for p in ("32-true", "bf16-mixed") for c in (False, True)}
    assert len({row["tflop_per_step"] for row in rows}) == 1  # layout and dtype change no work
    assert all(row["seconds_per_step"] > 0 and row["vae_encode_seconds"] > 0 for row in rows)
    (table,) = tmp_path.glob("cpu-step-tiny-*.md")
    assert table.read_text().count("| bf16-mixed |") == 2
    (raw,) = tmp_path.glob("cpu-step-tiny-*.json")
    assert json.loads(raw.read_text()) == rows
