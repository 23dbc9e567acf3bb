"""The `python -m realfill.fit` command, end to end on the tiny model."""

import csv
import json
import os
import signal
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.utilities.exceptions import SIGTERMException
from safetensors.torch import load_file

from realfill.fit import main

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "tiny.yaml")


def fast_preset(tmp_path: Path, every_n_steps: int = 2, num_samples: int = 3) -> str:
    """A config stacked on tiny.yaml: fewer, shorter samples and frequent checkpoints."""
    preset = {
        "trainer": {
            "max_steps": 4,
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {
                        "dirpath": "${trainer.default_root_dir}/checkpoints",
                        "every_n_train_steps": every_n_steps,
                        "save_last": True,
                    },
                },
                {"class_path": "realfill.callbacks.SaveLoRA"},
            ],
        },
        "selection": {"num_samples": num_samples, "num_inference_steps": 3, "batch_size": 2},
        "data": {"batch_size": 2},
    }
    path = tmp_path / "fast.yaml"
    path.write_text(yaml.safe_dump(preset))
    return str(path)


def fast_fit(tmp_path: Path) -> list[str]:
    """Arguments of a fit of tiny.yaml with `fast_preset` into `<tmp_path>/run`."""
    run_dir = tmp_path / "run"
    return [
        "--config",
        TINY,
        "--config",
        fast_preset(tmp_path),
        f"--trainer.default_root_dir={run_dir}",
    ]


@pytest.fixture
def run_fit(run_command):
    """`python -m realfill.fit` in its own process."""
    return lambda *args: run_command("realfill.fit", *args)


def test_tiny_fit_writes_config_lora_and_composited_completions(tmp_path, capsys):
    run_dir = tmp_path / "run"
    main(fast_fit(tmp_path))
    printed, bars = capsys.readouterr()
    assert f"Run dir: {run_dir.resolve()}" in printed
    assert "Training: 100%" in printed and "4/4" in printed and "Epoch" not in printed
    assert "Sampling: 100%" in bars and "3/3 [" in bars

    lora = load_file(run_dir / "lora" / "pytorch_lora_weights.safetensors")
    assert any(k.startswith("unet.") for k in lora)
    assert any(k.startswith("text_encoder.") for k in lora)
    out = run_dir / "completions"
    candidates = sorted(p.name for p in (out / "candidates").glob("*.png"))
    assert candidates == ["seed00000.png", "seed00001.png", "seed00002.png"]
    assert len(list((out / "ranked").glob("rank*_seed*.png"))) == 1  # keep: a quarter of 3
    scores = json.loads((out / "scores.json").read_text())
    assert [r["rank"] for r in scores] == [1, 2, 3]
    assert sorted(r["seed"] for r in scores) == [0, 1, 2]
    assert (out / "contact_sheet.png").is_file()
    assert f"Best completion: {out / scores[0]['file']}" in printed
    assert (run_dir / "config.yaml").is_file()
    assert not list(run_dir.glob(".*"))  # no staging leftovers


@pytest.mark.slow
@pytest.mark.parametrize("stacked", [None, "memory/24gb.yaml"], ids=["as-is", "24gb"])
def test_the_paper_config_trains_samples_and_selects_as_configured(tmp_path, stacked):
    """configs/realfill.yaml as it is (bf16-mixed, gradient clipping, compiled UNet and
    encoders, cuDNN settings), alone or with the 24 GB preset (checkpointing, accumulation),
    with only the model and the sizes made tiny: its trainer settings and the module's must
    work together."""
    run_dir = tmp_path / "run"
    preset = {
        "trainer": {
            "accelerator": "cpu",
            "max_steps": 2,
            "default_root_dir": str(run_dir),
            "callbacks": [
                {"class_path": "realfill.callbacks.SaveLoRA"},
                {
                    "class_path": "realfill.callbacks.PeriodicSampling",
                    "init_args": {"every_n_steps": 1, "seeds": [0], "num_inference_steps": 2},
                },
            ],
        },
        "selection": {"num_samples": 2, "num_inference_steps": 2, "batch_size": 2},
        "model": {
            "base_model": {"class_path": "realfill.modules.TinyStableDiffusionInpainting"},
            "compile": {"backend": "eager"},  # the wiring; test_realfill.py compares the numbers
        },
        "data": {"resolution": 32, "batch_size": 2, "num_workers": 0},
    }
    tiny = tmp_path / "tiny_sizes.yaml"
    tiny.write_text(yaml.safe_dump(preset))
    presets = [] if stacked is None else ["--config", str(REPO / "configs" / stacked)]
    configs = ["--config", str(REPO / "configs" / "realfill.yaml"), *presets]
    cli = main([*configs, "--config", str(tiny)])
    assert str(cli.trainer.precision) == "bf16-mixed" and cli.trainer.gradient_clip_val == 1.0
    denoiser = cli.model.base_model.denoiser
    assert denoiser._compiled_call_impl is not None  # compiled, and back after sampling
    assert len(list((run_dir / "samples").glob("step*.png"))) == 2
    assert (run_dir / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert len(list((run_dir / "completions" / "candidates").glob("*.png"))) == 2


def test_resume_continues_the_run_from_a_lora_only_checkpoint(tmp_path, capsys, monkeypatch):
    from realfill.modules import RealFillModule

    train, drawn = RealFillModule.training_step, {}

    def recorded(self, batch, batch_idx):
        state = torch.get_rng_state()
        drawn[self.global_step] = (batch["pixels"].sum().item(), torch.rand(1).item())
        torch.set_rng_state(state)
        return train(self, batch, batch_idx)

    monkeypatch.setattr(RealFillModule, "training_step", recorded)
    run_dir = tmp_path / "run"
    common = [
        "--config",
        TINY,
        "--config",
        fast_preset(tmp_path),
        f"--trainer.default_root_dir={run_dir}",
    ]
    main([*common, "--trainer.max_steps=2"])
    first = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert first["global_step"] == 2
    assert first["state_dict"] and all("lora_" in k for k in first["state_dict"])

    last = f"--ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"
    with pytest.raises(SystemExit) as exit_info:  # another LoRA rank: one line, not a traceback
        main([*common, "--trainer.max_steps=4", "--model.lora.rank=4", last])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        error.startswith("realfill: error: the checkpoint's LoRA does not fit") and "[8, " in error
    )
    record = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert record["model"]["lora"]["rank"] == 8  # the refused fit left the run's record alone

    main([*common, "--trainer.max_steps=4", last])
    resumed = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == 4
    optimizer_state = resumed["optimizer_states"][0]["state"]
    assert all(state["step"].item() == 4 for state in optimizer_state.values())
    for step in (0, 1):  # new examples, masks and noise, not those of the first steps again
        assert all(a != b for a, b in zip(drawn[step], drawn[step + 2], strict=True)), step


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("--data.scene_dir=/no/such/scene", "/no/such/scene"),
        (
            "--model.base_model.init_args.pretrained_model_name_or_path=/no/such/model",
            "/no/such/model",
        ),
        (
            "--model.compile.mode=reduce-overhead --trainer.accumulate_grad_batches=2",
            "accumulate_grad_batches=2",
        ),
        ("--trainer.precision=bf16-true", "trainer.precision=bf16-true would hold the LoRA"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(override, expected, capsys):
    """In-process (the commands' own processes are tested below): exit code 2, and the error's
    one line is the last thing written."""
    config = str(REPO / "configs" / "realfill.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", config, "--trainer.accelerator=cpu", *override.split()])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.startswith("realfill: error")]
    assert len(lines) == 1 and expected in lines[0] and stderr.strip().endswith(lines[0])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("--model.lora.rank=0", "model.lora.rank must be >= 1, got 0"),
        ("--model.prompt_dropout=2", "model.prompt_dropout must be in [0, 1], got 2.0"),
        (
            "--model.optimization.denoiser_learning_rate=-1",
            "model.optimization.denoiser_learning_rate must be >= 0",
        ),
        (
            "--model.optimization.warmup_steps=-1",
            "model.optimization.warmup_steps must be >= 0, got -1",
        ),
        ("--model.lora.alpha=-1", "model.lora.alpha must be > 0, got -1"),
        ("--selection.seed=-5", "SelectionSettings: seed and match_margin must be >= 0"),
        ("--data.batch_size=0", "data: need resolution >= 1, batch_size >= 1"),
        (
            '--trainer.callbacks+={"class_path":"realfill.callbacks.PeriodicSampling",'
            '"init_args":{"feather_blur":-1}}',
            "PeriodicSampling: feather_dilation and feather_blur must be >= 0, got 1 and -1",
        ),
        (
            '--trainer.callbacks+={"class_path":"realfill.callbacks.PeriodicSampling",'
            '"init_args":{"feather_blur":2}}',
            "PeriodicSampling: feather_blur (2) must be <= feather_dilation (1): a wider blur",
        ),
        ("--trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches must be >= 1"),
        ("--selection.resolution=3", "CompleteTarget: resolution=3 must be a multiple"),
        (
            '--trainer.callbacks+={"class_path":"realfill.callbacks.PeriodicSampling",'
            '"init_args":{"resolution":3}}',
            "PeriodicSampling: resolution=3 must be a multiple of 4 and at least 8",
        ),
    ],
)
def test_an_out_of_range_setting_is_one_line_before_training(tmp_path, override, expected, capsys):
    """Settings checked by the classes they configure are user errors too: one line naming the
    setting, exit code 2, nothing trained."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", TINY, f"--trainer.default_root_dir={tmp_path}", override])
    assert exit_info.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith(f"realfill: error: {expected}")
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("resolution", [34, 4])  # 4: a 1x1 deepest feature map
def test_a_resolution_the_model_cannot_take_is_one_line_and_exit_code_2(
    tmp_path, capsys, resolution
):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--config",
                TINY,
                f"--trainer.default_root_dir={tmp_path}",
                f"--data.resolution={resolution}",
            ]
        )
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    expected = f"data.resolution={resolution} must be a multiple of 4 and at least 8"
    assert error.startswith("realfill: error:") and expected in error


def test_a_run_dir_whose_completions_folder_holds_user_files_fails_before_training(
    tmp_path, capsys
):
    notes = tmp_path / "run" / "completions" / "notes.txt"
    notes.parent.mkdir(parents=True)
    notes.write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", TINY, f"--trainer.default_root_dir={tmp_path / 'run'}"])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    error = stderr.strip().splitlines()[-1]
    assert error.startswith("realfill: error:") and "completions/notes.txt: realfill did" in error
    assert notes.read_text() == "mine"
    # it stopped before training, and left nothing behind (no empty logs/version_0)
    assert [path.name for path in (tmp_path / "run").iterdir()] == ["completions"]


def test_the_optimizer_is_realfills_own_and_not_a_cli_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", TINY, "--optimizer", "torch.optim.SGD"])
    assert exit_info.value.code == 2
    assert "--optimizer" in capsys.readouterr().err


def test_a_flat_flag_of_earlier_versions_is_refused_naming_its_new_place(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", TINY, "--model.compile_denoiser=true"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error:")
    assert "(model.compile_denoiser is now model.compile.denoiser)" in error


def test_a_config_of_an_earlier_version_is_read_with_its_flat_keys_moved(tmp_path, capsys):
    """A run dir's config.yaml from before the settings were grouped still samples and
    resumes: its flat keys are read where they moved, with one line saying so."""
    old = tmp_path / "config.yaml"
    old.write_text("model:\n  warmup_steps: 10\n  compile_mode: default\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", TINY, "--config", str(old), "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr()
    model = yaml.safe_load(printed.out)["model"]
    assert model["optimization"]["warmup_steps"] == 10
    assert model["compile"]["mode"] == "default"
    assert printed.err.count("is an earlier version's") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="the DDP preset runs where there are GPUs")
def test_trainer_settings_lightning_refuses_are_one_line(tmp_path, capsys):
    ddp = str(REPO / "configs" / "trainer" / "ddp.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", TINY, "--config", ddp, f"--trainer.default_root_dir={tmp_path}"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("realfill: error:")


def test_a_base_model_not_on_this_machine_is_one_line_without_library_warnings(
    tmp_path, run_command
):
    """Offline, with no local folder of the hub id: the one-line error, and no warning above
    it (diffusers' call of a deprecated huggingface_hub argument printed one)."""
    result = run_command(
        "realfill.fit",
        "--config",
        str(REPO / "configs" / "realfill.yaml"),
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.accelerator=cpu",
    )
    assert result.returncode == 2
    assert "warn" not in result.stderr.lower(), result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("realfill: error: cannot load the base model")


def test_help_names_the_command_and_documents_every_key(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", TINY, "--help"])
    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: python -m realfill.fit ")
    assert "fine-tune on a scene" in shown  # the module's docstring, not Lightning's line
    assert "LoRA rank r: the width of the low-rank update" in shown  # a field's docstring
    assert "--model.compile.denoiser" in shown and "--model.optimization.warmup_steps" in shown
    assert "Linear warm-up steps, then a constant learning rate" in shown


def test_print_config_shows_the_papers_settings(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(REPO / "configs" / "realfill.yaml"), "--print_config"])
    assert exit_info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["base_model"]["init_args"]["pretrained_model_name_or_path"] == (
        "stabilityai/stable-diffusion-2-inpainting"
    )
    assert config["model"]["lora"]["rank"] == 8 and config["model"]["lora"]["alpha"] == 16
    assert config["model"]["optimization"]["denoiser_learning_rate"] == 2e-4
    assert config["model"]["optimization"]["text_encoder_learning_rate"] == 4e-5
    assert config["model"]["compile"]["denoiser"] is True
    assert config["data"]["batch_size"] == 16 and config["trainer"]["max_steps"] == 2000


@pytest.mark.slow
def test_two_process_ddp_fit_writes_the_lora_and_completions_once(tmp_path, run_fit):
    run_dir = tmp_path / "run"
    result = run_fit(
        "--config",
        TINY,
        "--config",
        fast_preset(tmp_path, every_n_steps=4, num_samples=1),  # none for the second process
        f"--trainer.default_root_dir={run_dir}",
        "--trainer.max_steps=2",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        "--trainer.log_every_n_steps=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(run_dir / "logs" / "version_0" / "metrics.csv") as rows:
        losses = [row["train/loss"] for row in csv.DictReader(rows) if row["train/loss"]]
    assert len(losses) == 2  # averaged over the processes (sync_dist), once per step
    assert "torchvision" not in result.stderr  # transformers' notice of processors never used
    assert "litlogger" not in result.stdout + result.stderr  # Lightning's advertisement
    assert result.stdout.count("Run dir:") == 1
    assert result.stdout.count("LoRA:") == 1
    assert (run_dir / "lora" / "pytorch_lora_weights.safetensors").is_file()
    scores = json.loads((run_dir / "completions" / "scores.json").read_text())
    assert [r["seed"] for r in scores] == [0]


def test_completions_are_sampled_before_the_model_leaves_its_device(tmp_path, monkeypatch):
    """Lightning's teardown moves the model to the CPU before `on_fit_end`; sampling there
    would run the whole selection on the CPU of a GPU machine."""
    from lightning.pytorch.strategies import Strategy

    from realfill.modules import RealFillModule

    events = []
    generate, teardown = RealFillModule.generate, Strategy.teardown
    monkeypatch.setattr(
        RealFillModule, "generate", lambda *a, **k: events.append("sample") or generate(*a, **k)
    )
    monkeypatch.setattr(Strategy, "teardown", lambda s: events.append("teardown") or teardown(s))
    main(
        [
            "--config",
            TINY,
            "--config",
            fast_preset(tmp_path),
            f"--trainer.default_root_dir={tmp_path / 'run'}",
            "--trainer.max_steps=1",
        ]
    )
    assert "sample" in events and "teardown" in events
    assert events.index("sample") < events.index("teardown")


@pytest.mark.parametrize(
    ("config", "scheduler", "expected"),
    [
        (TINY, "Bogus", "'Bogus' is not a diffusers scheduler class"),
        (
            str(REPO / "configs" / "tiny_flux_fill.yaml"),
            "DDPMScheduler",
            "DDPMScheduler does not fit a model trained with FlowMatchEulerDiscreteScheduler",
        ),
        (
            TINY,
            "FlowMatchEulerDiscreteScheduler",
            "FlowMatchEulerDiscreteScheduler does not fit a model trained with DDPMScheduler",
        ),
    ],
    ids=["unknown", "flow-matching-model", "noise-prediction-model"],
)
def test_a_scheduler_sampling_cannot_use_is_refused_before_training(
    tmp_path, capsys, config, scheduler, expected
):
    preset = tmp_path / "scheduler.yaml"
    preset.write_text(yaml.safe_dump({"selection": {"scheduler": scheduler}}))
    run_dir = tmp_path / "run"
    args = ["--config", config, "--config", str(preset), f"--trainer.default_root_dir={run_dir}"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("realfill: error:") and expected in error, error
    assert not (run_dir / "logs").exists() or not list((run_dir / "logs").rglob("metrics.csv"))


def test_a_failure_while_sampling_at_the_end_keeps_the_trained_lora(tmp_path, monkeypatch):
    from realfill.callbacks import CompleteTarget

    def fail(*args, **kwargs):
        raise RuntimeError("out of memory while sampling")

    monkeypatch.setattr(CompleteTarget, "candidates", fail)
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="out of memory while sampling"):
        main(fast_fit(tmp_path))
    assert (run_dir / "lora" / "pytorch_lora_weights.safetensors").is_file()


def fit_stopped_at_step_3(run_dir: Path, stop: BaseException, monkeypatch) -> None:
    """A tiny.yaml fit (checkpoints every 20 steps) whose fourth step raises `stop`."""
    from realfill.modules import RealFillModule

    train = RealFillModule.training_step

    def stopped_at_step_3(self, batch, batch_idx):
        if self.global_step == 3:
            raise stop
        return train(self, batch, batch_idx)

    monkeypatch.setattr(RealFillModule, "training_step", stopped_at_step_3)
    handler = signal.getsignal(signal.SIGINT)  # Lightning ignores a second Ctrl-C from then on
    try:
        main(["--config", TINY, f"--trainer.default_root_dir={run_dir}", "--data.batch_size=2"])
    finally:
        signal.signal(signal.SIGINT, handler)


def test_ctrl_c_keeps_a_checkpoint_and_the_lora_of_the_step_reached(tmp_path, monkeypatch, capsys):
    """Stopping early (the periodic samples look done) loses nothing: the checkpoint is saved
    at the step reached and the LoRA written for `realfill.sample`."""
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        fit_stopped_at_step_3(run_dir, KeyboardInterrupt(), monkeypatch)
    assert exit_info.value.code == 1
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 3
    lora = run_dir / "lora" / "pytorch_lora_weights.safetensors"
    assert f"LoRA (stopped at step 3): {lora}" in capsys.readouterr().out
    trained = [v for k, v in checkpoint["state_dict"].items() if "lora_" in k]
    assert any(v.abs().sum() > 0 for k, v in checkpoint["state_dict"].items() if "lora_B" in k)

    def sums(tensors):
        return sorted(round(float(t.double().sum()), 5) for t in tensors)

    assert sums(load_file(lora).values()) == sums(trained)  # the step-3 weights
    assert not (run_dir / "completions").exists()  # no sampling after an interrupt


def test_sigterm_keeps_a_checkpoint_and_the_lora_and_exits_143(tmp_path, monkeypatch, capsys):
    """A job scheduler's pre-emption (SIGTERM) is a stop, not a success: Lightning ends the fit
    with a code-less `SystemExit` (status 0) and its callbacks saved nothing."""
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        fit_stopped_at_step_3(run_dir, SIGTERMException(), monkeypatch)
    assert exit_info.value.code == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == "realfill: stopped by SIGTERM"
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3
    assert (run_dir / "lora" / "pytorch_lora_weights.safetensors").is_file()


def test_a_crash_saves_no_checkpoint_or_lora(tmp_path, monkeypatch):
    """Under DDP a crash stops one process: a checkpoint's barrier would hang the others."""
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        fit_stopped_at_step_3(run_dir, RuntimeError("CUDA out of memory"), monkeypatch)
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "lora").exists()


def test_a_missing_checkpoint_is_one_line_before_the_model_loads(tmp_path, capsys):
    missing = tmp_path / "run" / "checkpoints" / "last.ckpt"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--config",
                TINY,
                f"--trainer.default_root_dir={tmp_path / 'run'}",
                f"--ckpt_path={missing}",
            ]
        )
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"realfill: error: {missing}: no such checkpoint file (--ckpt_path)"
    assert not (tmp_path / "run").exists()


def damaged_checkpoint(path: Path, damage: str) -> None:
    """A `--ckpt_path` that is no whole training checkpoint."""
    if damage == "text":
        path.write_text("not a checkpoint\n")
        return
    torch.save({"state_dict": {"w": torch.zeros(64)}, "optimizer_states": []}, path)
    if damage == "truncated":  # a full disk, an interrupted copy
        path.write_bytes(path.read_bytes()[:1000])
    else:  # weights only
        torch.save({"state_dict": {"w": torch.zeros(64)}}, path)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("text", "cannot be read as a checkpoint, truncated or not one"),
        ("truncated", "cannot be read as a checkpoint, truncated or not one"),
        ("weights-only", "not a training checkpoint to resume from, it has no optimizer_states"),
    ],
)
def test_an_unreadable_checkpoint_is_one_line_and_leaves_the_run_as_it_was(
    tmp_path, capsys, damage, expected
):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("# the run's record\n")
    checkpoint = tmp_path / "bad.ckpt"
    damaged_checkpoint(checkpoint, damage)
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--config",
                TINY,
                f"--trainer.default_root_dir={run_dir}",
                f"--ckpt_path={checkpoint}",
                "--model.lora.rank=4",
            ]
        )
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f"realfill: error: {checkpoint}: {expected} (--ckpt_path)"
    )
    assert [path.name for path in run_dir.iterdir()] == ["config.yaml"]
    assert (run_dir / "config.yaml").read_text() == "# the run's record\n"


@pytest.mark.parametrize("blocked", ["run dir", "below the run dir", "samples"])
def test_an_output_folder_blocked_by_a_file_is_one_line_before_training(tmp_path, capsys, blocked):
    """A run dir that is a file, or a file where periodic samples go: found at the first write,
    the second would come after `every_n_steps` steps of training."""
    afile = tmp_path / "afile"
    afile.write_text("mine")
    run_dir = {"run dir": afile, "below the run dir": afile / "run"}.get(blocked, tmp_path)
    periodic = (
        '{"class_path":"realfill.callbacks.PeriodicSampling","init_args":{"dirname":"afile"}}'
    )
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--config",
                TINY,
                f"--trainer.default_root_dir={run_dir}",
                f"--trainer.callbacks+={periodic}",
            ]
        )
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    expected = {
        "run dir": f"trainer.default_root_dir: {afile} is not a folder",
        "below the run dir": f"trainer.default_root_dir: {run_dir} cannot be made: {afile} is not",
        "samples": f"PeriodicSampling: {afile} is not a folder",
    }[blocked]
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith(f"realfill: error: {expected}")
    assert afile.read_text() == "mine"
    assert not (tmp_path / "checkpoints").exists()


def test_a_fit_stopped_while_sampling_at_the_end_samples_when_resumed(tmp_path, monkeypatch):
    """Resumed from the checkpoint of its last step, the fit has nothing left to train and
    Lightning skips `on_train_end`: the completions are sampled all the same."""
    from realfill.callbacks import CompleteTarget

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    run_dir = tmp_path / "run"
    common = [*fast_fit(tmp_path), "--trainer.max_steps=2"]
    with monkeypatch.context() as patch:
        patch.setattr(CompleteTarget, "candidates", stopped)
        handler = signal.getsignal(signal.SIGINT)  # Lightning ignores a second Ctrl-C after
        try:
            with pytest.raises(SystemExit):
                main(common)
        finally:
            signal.signal(signal.SIGINT, handler)
    assert not (run_dir / "completions").exists()

    main([*common, f"--ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"])
    scores = json.loads((run_dir / "completions" / "scores.json").read_text())
    assert sorted(r["seed"] for r in scores) == [0, 1, 2]


def test_an_interpolation_that_cannot_resolve_is_one_line(monkeypatch, capsys):
    """As a W&B sweep's command run by hand, without the agent's WANDB_RUN_ID."""
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", TINY, "--trainer.default_root_dir=runs/${oc.env:WANDB_RUN_ID}"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("realfill: error: cannot resolve trainer.") and "WANDB_RUN_ID" in error


@pytest.mark.parametrize(
    "flags", [[], ["--trainer.enable_progress_bar=false"]], ids=["default", "off"]
)
def test_the_fit_shows_the_step_bar_unless_bars_are_turned_off(tmp_path, monkeypatch, flags):
    import realfill.fit
    from realfill.callbacks import StepProgressBar

    monkeypatch.setattr(realfill.fit, "fit", lambda cli: None)  # the trainer as built, unused
    cli = main(["--config", TINY, f"--trainer.default_root_dir={tmp_path}", *flags])
    bar = cli.trainer.progress_bar_callback
    assert isinstance(bar, StepProgressBar) if not flags else bar is None


def refused_fit(args: list[str], capsys) -> str:
    """The one line a fit refused with exit code 2 printed."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    return stderr.strip().splitlines()[-1]


def test_a_users_config_yaml_in_the_run_dir_is_refused_before_training(tmp_path, capsys):
    """Defect 2: lora/ and completions/ were guarded, config.yaml was overwritten."""
    mine = tmp_path / "run" / "config.yaml"
    mine.parent.mkdir()
    mine.write_text("# my own notes\nlearning_rate: 1\n")
    error = refused_fit(["--config", TINY, f"--trainer.default_root_dir={mine.parent}"], capsys)
    assert (
        error == f"realfill: error: {mine}: realfill did not write it; move it or choose "
        "another run dir (trainer.default_root_dir), where a fit writes its config"
    )
    assert mine.read_text() == "# my own notes\nlearning_rate: 1\n"
    assert [path.name for path in mine.parent.iterdir()] == ["config.yaml"]


def test_another_tools_last_ckpt_in_the_run_dir_is_refused_before_training(tmp_path, capsys):
    """Lightning would overwrite `checkpoints/last.ckpt` whoever wrote it."""
    theirs = tmp_path / "run" / "checkpoints" / "last.ckpt"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"another project's weights")
    error = refused_fit(
        ["--config", TINY, f"--trainer.default_root_dir={tmp_path / 'run'}"], capsys
    )
    assert error == (
        f"realfill: error: {theirs}: realfill did not write it; move it or choose another run "
        "dir (trainer.default_root_dir), where a fit writes its checkpoints"
    )
    assert theirs.read_bytes() == b"another project's weights"


def test_a_users_file_deep_in_the_completions_is_refused_before_training(tmp_path, capsys):
    """Defect 1: `completions/candidates/holiday.jpg` was replaced with the folder."""
    photo = tmp_path / "run" / "completions" / "candidates" / "holiday.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"photo")
    error = refused_fit(
        ["--config", TINY, f"--trainer.default_root_dir={tmp_path / 'run'}"], capsys
    )
    assert error.startswith(f"realfill: error: {photo}: realfill did not write it")
    assert photo.read_bytes() == b"photo"


def test_sigterm_during_end_of_fit_sampling_exits_143_and_keeps_the_old_completions(
    tmp_path, monkeypatch, capsys
):
    """Defect 4: a SIGTERM during the end-of-fit sampling was ignored and the exit code 0.
    Now it stops at the next denoising step: exit 143, the LoRA and last.ckpt written, the
    earlier completions kept."""
    from realfill.callbacks import CompleteTarget

    args = fast_fit(tmp_path)
    main(args)
    completions = tmp_path / "run" / "completions"
    before = {p.name: p.read_bytes() for p in (completions / "candidates").iterdir()}
    candidates = CompleteTarget.candidates

    def terminated(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # recorded by Lightning's handler
        return candidates(self, *args, **kwargs)

    monkeypatch.setattr(CompleteTarget, "candidates", terminated)
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main([*args, "--trainer.max_steps=6", "--ckpt_path=last"])
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert exit_info.value.code == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == "realfill: stopped by SIGTERM"
    assert {p.name: p.read_bytes() for p in (completions / "candidates").iterdir()} == before
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 6
    assert (tmp_path / "run" / "lora" / "pytorch_lora_weights.safetensors").is_file()


def built(cli) -> None:
    """A command that does nothing with the CLI it is given."""


def built_fit(args: list[str]):
    """The fit command's CLI built from `args` (model, data and trainer), without fitting."""
    from realfill.callbacks.run_config import SaveRunConfig
    from realfill.cli import run_command
    from realfill.fit import RealFillCLI

    cli, _ = run_command(RealFillCLI, built, SaveRunConfig, args)
    return cli


def test_selection_is_set_by_name_whatever_callbacks_follow(tmp_path):
    """`--selection.KEY` sets the end-of-fit selection even with callbacks listed after it
    (the trap of `--trainer.callbacks.KEY`, which sets the last one's)."""
    from realfill.callbacks import CompleteTarget, PeriodicSampling, SaveLoRA, WandbReport

    periodic = str(REPO / "configs" / "callbacks" / "periodic_sampling.yaml")
    report = '{"class_path":"realfill.callbacks.WandbReport"}'
    args = ["--config", TINY, "--config", periodic, f"--trainer.callbacks+={report}"]
    args += [f"--trainer.default_root_dir={tmp_path}", "--selection.num_samples=5"]
    callbacks = built_fit(args).trainer.callbacks
    (complete,) = [c for c in callbacks if isinstance(c, CompleteTarget)]
    assert complete.num_samples == 5 and complete.num_inference_steps == 20  # tiny.yaml's
    kinds = [type(c) for c in callbacks]
    position = kinds.index(CompleteTarget)
    assert kinds.index(SaveLoRA) < position < kinds.index(PeriodicSampling)
    assert position < kinds.index(WandbReport)


def legacy_config(tmp_path: Path, selection: dict | None = None) -> Path:
    """A resolved tiny config as runs wrote it before `selection:`: the end-of-fit selection
    listed in `trainer.callbacks` (`CompleteTarget` with `init_args`), and no selection key."""
    config = yaml.safe_load((REPO / "configs" / "base.yaml").read_text())
    config["trainer"]["default_root_dir"] = str(tmp_path / "run")
    config["model"]["base_model"] = {"class_path": "realfill.modules.TinyStableDiffusionInpainting"}
    config["data"] |= {"resolution": 32, "batch_size": 2, "num_workers": 0}
    init_args = config.pop("selection")
    config["trainer"]["callbacks"].append(
        {"class_path": "realfill.callbacks.CompleteTarget", "init_args": init_args}
    )
    if selection is not None:
        config["selection"] = selection
    path = tmp_path / "legacy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_config_listing_complete_target_still_fits_with_it(tmp_path):
    from realfill.callbacks import CompleteTarget

    callbacks = built_fit(["--config", str(legacy_config(tmp_path))]).trainer.callbacks
    (complete,) = [c for c in callbacks if isinstance(c, CompleteTarget)]
    assert complete.num_samples == 64 and complete.keep == 16  # base.yaml's, from the list


def test_a_selection_given_twice_is_one_line(tmp_path, capsys):
    config = legacy_config(tmp_path, selection={"num_samples": 8})
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("realfill: error: trainer.callbacks lists realfill.callbacks.Complete")
    assert "selection: null" in error


def test_the_old_callbacks_flag_names_the_selection_key(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--config",
                TINY,
                f"--trainer.default_root_dir={tmp_path}",
                "--trainer.callbacks.num_samples=3",
            ]
        )
    assert exit_info.value.code == 2
    assert "(the end-of-fit selection's num_samples is now selection.num_samples)" in (
        capsys.readouterr().err
    )
