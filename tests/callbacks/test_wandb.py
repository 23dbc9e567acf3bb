"""W&B logging: an offline run keeps the images, the candidates table, the config and the LoRA
artifact in its run folder; disabled W&B writes nothing and still fits."""

import struct
import time
from pathlib import Path

import pytest
import wandb
from wandb.proto import wandb_internal_pb2

from realfill.selection import RankedCandidate

REPO = Path(__file__).resolve().parents[2]
WANDB_PRESET = str(REPO / "configs" / "logger" / "wandb.yaml")
FAST_FIT = {
    "trainer": {
        "max_steps": 4,
        "log_every_n_steps": 1,
        "callbacks": [
            {"class_path": "realfill.callbacks.SaveLoRA"},
            {"class_path": "lightning.pytorch.callbacks.LearningRateMonitor"},
            {
                "class_path": "realfill.callbacks.PeriodicSampling",
                "init_args": {"every_n_steps": 2, "seeds": [0, 1], "num_inference_steps": 2},
            },
        ],
    },
    "selection": {"num_samples": 4, "num_inference_steps": 2},
    "data": {"batch_size": 2},
}


@pytest.fixture(autouse=True)
def fresh_wandb():
    """wandb keeps its settings (WANDB_MODE included) in a process-wide singleton: start each
    test from none and leave none behind."""
    wandb.teardown()
    yield
    wandb.finish()
    wandb.teardown()


def wandb_records(path: Path) -> list[wandb_internal_pb2.Record]:
    """The records of a `.wandb` transaction log: a 7-byte header, then LevelDB-log chunks
    (CRC 4 bytes, length 2, type 1) in 32 KiB blocks whose unusable tails are zero padding."""
    data, block = path.read_bytes(), 32 * 1024
    assert data[:4] == b":W&B"
    records, pending, offset = [], b"", 7
    while offset + 7 <= len(data):
        room = block - offset % block
        if room < 7:
            offset += room
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + 7])
        if kind == 0:
            break
        pending += data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def flushed_records(path: Path, timeout: float = 60.0) -> list[wandb_internal_pb2.Record]:
    """The records of a run's transaction log once wandb's service has written its exit record:
    `wandb.finish()` can return before the service has flushed the log (seen once in CI: no
    records at all)."""
    deadline = time.monotonic() + timeout
    records = wandb_records(path)
    while not any(record.HasField("exit") for record in records):
        assert time.monotonic() < deadline, f"{path}: no exit record after {timeout} s"
        time.sleep(0.2)
        records = wandb_records(path)
    return records


def test_captions_carry_rank_seed_and_score():
    assert RankedCandidate(12, 40, 1, "seed12.png").caption == "#1 seed 12: 40 matches"
    assert RankedCandidate(3, 1, 2, "seed3.png").caption == "#2 seed 3: 1 match"


def test_offline_run_keeps_images_table_config_and_lora_artifact(fit_tiny, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = fit_tiny("run", FAST_FIT, extra=("--config", WANDB_PRESET))
    wandb.finish()  # what the end of the `realfill.fit` process does: flush the run

    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    media = offline / "files" / "media"
    images = [p.relative_to(media).as_posix() for p in media.rglob("*.png")]
    assert sum(name.startswith("images/samples_") for name in images) == 2 * 2  # 2 steps x 2 seeds
    assert sum(name.startswith("images/completions/ranked_") for name in images) == 1
    assert sum(name.startswith("images/completions/contact_sheet_") for name in images) == 1
    assert list((media / "table" / "completions").glob("candidates_*.table.json"))

    records = flushed_records(next(offline.glob("run-*.wandb")))
    run_id = next(r.run.run_id for r in records if r.HasField("run"))
    artifacts = [r.artifact for r in records if r.HasField("artifact")]
    artifacts = [a for a in artifacts if a.type != "run_table"]  # the table is one too
    assert [(a.name, a.type) for a in artifacts] == [(f"lora-{run_id}", "lora")]
    assert [e.path for e in artifacts[0].manifest.contents] == ["pytorch_lora_weights.safetensors"]
    config_keys = {item.key for r in records if r.HasField("config") for item in r.config.update}
    assert "cli" in config_keys  # the resolved config from <run dir>/config.yaml
    history = [item for r in records if r.HasField("history") for item in r.history.item]
    history_keys = {item.key or item.nested_key[0] for item in history}
    assert {"train/loss", "completions/best_score", "samples"} <= history_keys
    assert any(key.startswith("lr-") for key in history_keys)
    captions = [item.value_json for item in history if list(item.nested_key)[-1:] == ["captions"]]
    assert '["step 2 seed 0","step 2 seed 1"]' in captions
    assert any("seed" in c and "matches" in c for c in captions)  # the ranked completions


@pytest.mark.parametrize("mode", ["disabled"])
def test_disabled_wandb_fits_and_writes_nothing(fit_tiny, monkeypatch, mode):
    monkeypatch.setenv("WANDB_MODE", mode)
    fast = {"trainer": {"max_steps": 2, "callbacks": FAST_FIT["trainer"]["callbacks"][:1]}}
    fast["selection"] = None
    run_dir = fit_tiny("run", fast, extra=("--config", WANDB_PRESET))
    assert (run_dir / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert not list(run_dir.glob("wandb/*run-*"))


def test_settings_that_named_files_to_read_back_are_one_line_hints():
    """The report takes the selection, the LoRA and the config in memory now."""
    from realfill.callbacks import WandbReport
    from realfill.errors import ConfigError

    with pytest.raises(ConfigError, match="^WandbReport: lora_dirname is no longer read: "):
        WandbReport(lora_dirname="lora")
