"""`python -m realfill.sample` on a finished tiny run: selection, reproducibility, two processes."""

import errno
import json
import os
import shutil
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from PIL import Image

from realfill.cli import run_cli
from realfill.fit import main as fit
from realfill.sample import CandidateSampler, SampleCLI, collect, prints_and_exits
from realfill.sample import main as sample
from realfill.selection import SelectionSettings

REPO = Path(__file__).resolve().parents[1]
FAST_SAMPLING = ["--num_inference_steps=2", "--batch_size=3"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny run fitted for two steps, with no end-of-fit sampling."""
    root = tmp_path_factory.mktemp("sample")
    preset = root / "preset.yaml"
    preset.write_text(
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
    run = root / "run"
    fit(
        [
            "--config",
            str(REPO / "configs" / "tiny.yaml"),
            "--config",
            str(preset),
            f"--trainer.default_root_dir={run}",
        ]
    )
    return run


def candidate_bytes(out: Path) -> dict[int, bytes]:
    return {
        int(p.stem.removeprefix("seed")): p.read_bytes() for p in (out / "candidates").glob("*.png")
    }


def test_sample_writes_ranked_selection(run_dir, tmp_path, capsys):
    out = tmp_path / "out"
    logged = sorted(run_dir.rglob("version_*"))
    sample(
        [
            "--config",
            str(run_dir / "config.yaml"),
            "--num_samples=8",
            "--keep=3",
            f"--out={out}",
            *FAST_SAMPLING,
        ]
    )
    assert sorted(candidate_bytes(out)) == list(range(8))
    ranked = sorted(p.name for p in (out / "ranked").glob("*.png"))
    scores = json.loads((out / "scores.json").read_text())
    assert [r["rank"] for r in scores] == list(range(1, 9))
    assert [s["score"] for s in scores] == sorted((s["score"] for s in scores), reverse=True)
    assert ranked == [f"rank{r['rank']:02d}_seed{r['seed']:05d}.png" for r in scores[:3]]
    assert (out / "contact_sheet.png").is_file()
    assert not list(tmp_path.glob(".*"))  # staging removed
    assert sorted(run_dir.rglob("version_*")) == logged  # sampling logs nothing
    captured = capsys.readouterr()
    printed = captured.out
    assert f"Best completion: {out / scores[0]['file']}" in printed
    assert "Sampling: 100%" in printed and "Predicting" not in printed
    assert "8/8" in printed and "candidate/s" in printed  # counted in candidates, not batches
    assert "Ranking: 100%" in captured.err  # a bar of its own (tqdm's stream), after sampling's
    assert "/min): sampling " in printed and ", ranking " in printed and ", writing " in printed
    assert "0/?" not in printed and "DataLoader" not in printed


def test_an_interrupted_sample_leaves_no_staged_candidates(run_dir, tmp_path, monkeypatch):
    """Ctrl-C in the second batch: the first batch's staged files are removed, no output."""
    predict = CandidateSampler.predict_step

    def interrupted(self, seeds, batch_idx):
        if batch_idx == 1:
            raise KeyboardInterrupt
        return predict(self, seeds, batch_idx)

    monkeypatch.setattr(CandidateSampler, "predict_step", interrupted)
    out = tmp_path / "out"
    handler = signal.getsignal(signal.SIGINT)  # Lightning ignores a second Ctrl-C from then on
    try:
        with pytest.raises(SystemExit) as exit_info:
            config = ["--config", str(run_dir / "config.yaml"), *FAST_SAMPLING]
            sample([*config, "--num_samples=4", f"--out={out}"])
    finally:
        signal.signal(signal.SIGINT, handler)
    assert exit_info.value.code == 1
    assert not list(tmp_path.glob(".*")) and not out.exists()


def test_a_recorded_seed_reproduces_its_candidate_bit_for_bit(run_dir, tmp_path):
    config = ["--config", str(run_dir / "config.yaml"), *FAST_SAMPLING]
    sample([*config, "--num_samples=4", f"--out={tmp_path / 'all'}"])
    sample([*config, "--num_samples=1", "--seed=2", f"--out={tmp_path / 'one'}"])
    assert candidate_bytes(tmp_path / "one")[2] == candidate_bytes(tmp_path / "all")[2]


@pytest.mark.slow
def test_two_processes_draw_each_seed_once_and_the_same_candidates(run_dir, tmp_path, run_command):
    config = ["--config", str(run_dir / "config.yaml"), "--num_samples=5", *FAST_SAMPLING]
    # CPU kernels round differently with the thread count: sample with each DDP process's
    # share, as Lightning sets it (unless OMP_NUM_THREADS is set)
    share = int(os.environ.get("OMP_NUM_THREADS", 0)) or len(os.sched_getaffinity(0)) // 2
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, share))
    try:
        sample([*config, f"--out={tmp_path / 'single'}"])
    finally:
        torch.set_num_threads(threads)
    result = run_command(
        "realfill.sample",
        *config,
        f"--out={tmp_path / 'ddp'}",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    single, ddp = candidate_bytes(tmp_path / "single"), candidate_bytes(tmp_path / "ddp")
    assert sorted(ddp) == sorted(single) == list(range(5))
    assert ddp == single
    assert len(json.loads((tmp_path / "ddp" / "scores.json").read_text())) == 5
    assert not list(tmp_path.glob(".*"))  # no staging folder or lock of either process left


def test_a_missing_lora_is_one_line_and_exit_code_2(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sample(["--config", str(run_dir / "config.yaml"), f"--lora={tmp_path / 'nope'}"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("realfill: error:") and str(tmp_path / "nope") in error


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--num_samples=0"], "num_samples must be >= 1, got 0"),
        (["--keep=-1"], "keep must be >= 0, got -1"),
        (["--num_inference_steps=0"], "num_inference_steps must be >= 1, got 0"),
        (["--batch_size=0"], "batch_size must be >= 1, got 0"),
        (["--feather_dilation=-2"], "feather_blur must be >= 0, got -2 and 1"),
        (
            ["--feather_blur=2"],
            "feather_blur (2) must be <= feather_dilation (1): a wider blur reaches into the "
            "hole and blends the target's missing pixels into the fill",
        ),
        (["--resolution=0"], "resolution must be >= 1 (or null), got 0"),
    ],
)
def test_impossible_selection_settings_are_one_line_and_exit_code_2(
    run_dir, arguments, expected, capsys
):
    with pytest.raises(SystemExit) as exit_info:
        sample(["--config", str(run_dir / "config.yaml"), *arguments])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(expected)


def test_an_out_folder_holding_user_files_is_refused_before_sampling(run_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit) as exit_info:
        sample(["--config", str(run_dir / "config.yaml"), f"--out={out}", *FAST_SAMPLING])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("realfill: error:") and f"{out}/notes.txt: realfill did not" in error
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert not list(tmp_path.glob(".*"))  # no staging folder was made


def test_unset_selection_settings_come_from_the_runs_complete_target(run_dir, tmp_path):
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["trainer"]["callbacks"].append(
        {
            "class_path": "realfill.callbacks.CompleteTarget",
            "init_args": {"num_inference_steps": 3, "feather_dilation": 2, "feather_blur": 2},
        }
    )
    with_completion = tmp_path / "config.yaml"
    with_completion.write_text(yaml.safe_dump(config))
    seen = {}

    def record(cli) -> None:
        seen.update(steps=cli.config.num_inference_steps, blur=cli.config.feather_blur)

    base = ["--config", str(with_completion)]
    run_cli(SampleCLI, record, None, base)
    assert seen == {"steps": 3, "blur": 2}
    run_cli(SampleCLI, record, None, [*base, "--num_inference_steps", "2"])
    assert seen == {"steps": 2, "blur": 2}
    stacked = tmp_path / "sampling.yaml"
    stacked.write_text(yaml.safe_dump({"feather_blur": 0}))  # a later file overrides too
    run_cli(SampleCLI, record, None, [*base, "--config", str(stacked)])
    assert seen == {"steps": 3, "blur": 0}


def test_unset_selection_settings_come_from_the_runs_selection_section(run_dir, tmp_path):
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["selection"] = {"num_inference_steps": 3, "feather_dilation": 2, "feather_blur": 2}
    with_selection = tmp_path / "config.yaml"
    with_selection.write_text(yaml.safe_dump(config))
    seen = {}

    def record(cli) -> None:
        seen.update(steps=cli.config.num_inference_steps, blur=cli.config.feather_blur)

    run_cli(SampleCLI, record, None, ["--config", str(with_selection)])
    assert seen == {"steps": 3, "blur": 2}
    run_cli(SampleCLI, record, None, ["--config", str(with_selection), "--feather_blur=0"])
    assert seen == {"steps": 3, "blur": 0}


def test_print_config_shows_the_settings_sampling_will_use(run_dir, tmp_path, run_command):
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["trainer"]["callbacks"].append(
        {"class_path": "realfill.callbacks.CompleteTarget", "init_args": {"batch_size": 7}}
    )
    with_completion = tmp_path / "config.yaml"
    with_completion.write_text(yaml.safe_dump(config))
    result = run_command("realfill.sample", "--config", str(with_completion), "--print_conf=")
    assert result.returncode == 0, result.stderr[-3000:]
    assert yaml.safe_load(result.stdout)["batch_size"] == 7  # abbreviated, as argparse allows
    assert "args parameter" not in result.stderr  # no warning of arguments given twice


@pytest.mark.parametrize(
    ("word", "expected"),
    [("-h", True), ("--help", True), ("--hel", True), ("--print_config=skip_null", True)]
    + [("--print_conf", True), ("--out=x", False), ("--num_samples", False), ("--", False)],
)
def test_print_and_exit_options_are_recognised_abbreviated(word, expected):
    assert prints_and_exits(word) is expected


def test_a_run_fitted_with_relative_paths_samples_from_any_folder(tmp_path, monkeypatch):
    """config.yaml records the run dir and the scene as absolute paths."""
    shutil.copytree(REPO / "examples" / "motorcycle", tmp_path / "scene")
    preset = tmp_path / "preset.yaml"
    callbacks = [{"class_path": "realfill.callbacks.SaveLoRA"}]
    fit_only = {"trainer": {"max_steps": 1, "callbacks": callbacks}, "selection": None}
    preset.write_text(yaml.safe_dump(fit_only))
    monkeypatch.chdir(tmp_path)
    fit(
        ["--config", str(REPO / "configs" / "tiny.yaml"), "--config", str(preset)]
        + ["--trainer.default_root_dir=run", "--data.scene_dir=scene", "--data.batch_size=2"]
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    sample(["--config", "../run/config.yaml", "--num_samples=1", *FAST_SAMPLING])
    assert sorted(candidate_bytes(tmp_path / "run" / "completions")) == [0]


def test_dirname_names_the_output_folder_under_the_run_dir(run_dir):
    config = ["--config", str(run_dir / "config.yaml"), *FAST_SAMPLING]
    sample([*config, "--num_samples=1", "--dirname=other"])
    assert sorted(candidate_bytes(run_dir / "other")) == [0]


def test_a_process_left_without_seeds_gets_one_empty_batch_and_draws_nothing():
    """Under DDP Lightning refuses a process an empty loader; with fewer seeds than processes
    (`--num_samples 1` on two GPUs) the idle one must still take part, drawing nothing."""
    sampler = CandidateSampler(None, SelectionSettings(batch_size=4), None, 64, seeds=[3, 4, 5])
    shares = []
    for rank in range(4):
        sampler.trainer = SimpleNamespace(global_rank=rank, world_size=4)
        shares.append([batch.tolist() for batch in sampler.predict_dataloader()])
    assert shares == [[[3]], [[4]], [[5]], [[]]]
    assert sampler.predict_step(torch.empty(0, dtype=torch.long), 0) == []


@pytest.mark.slow
def test_a_compiled_samplers_partial_last_batch_is_padded_not_compiled_again(monkeypatch):
    from realfill.data import load_scene
    from realfill.modules import CompileSettings, RealFillModule, TinyStableDiffusionInpainting
    from realfill.modules import sampling as sampling_module

    # batches on the CPU, as on a GPU
    monkeypatch.setattr(sampling_module, "sampling_batch_size", lambda requested, device: requested)
    model = RealFillModule(
        TinyStableDiffusionInpainting(seed=0),
        compile=CompileSettings(sampling=True, backend="eager"),
    )
    selection = SelectionSettings(batch_size=2, num_inference_steps=2)
    scene = load_scene(REPO / "examples" / "motorcycle")
    sampler = CandidateSampler(model, selection, scene, 32, seeds=[0, 1, 2])
    sampler.trainer = SimpleNamespace(global_rank=0, world_size=1)
    (full, partial) = sampler.predict_dataloader()
    torch._dynamo.utils.counters.clear()
    assert [c["seed"] for c in sampler.predict_step(full, 0)] == [0, 1]
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert [c["seed"] for c in sampler.predict_step(partial, 1)] == [2]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs


def test_staged_candidates_are_collected_in_seed_order_past_five_digits(tmp_path):
    """Ties in the ranking go to the lower seed, so the order must be numeric."""
    for seed in (100000, 99999, 7):
        Image.new("RGB", (2, 2)).save(tmp_path / f"seed{seed:05d}.png")
    seeds, files = collect(tmp_path)
    assert seeds == [7, 99999, 100000]
    assert [file.name for file in files] == ["seed00007.png", "seed99999.png", "seed100000.png"]


@pytest.mark.parametrize("damage", ["truncated", "another rank"])
def test_a_damaged_or_mismatched_lora_is_one_line_and_exit_code_2(
    run_dir, tmp_path, damage, capsys
):
    from realfill.modules import LoraSettings, RealFillModule, TinyStableDiffusionInpainting

    lora = tmp_path / "lora"
    path = lora / "pytorch_lora_weights.safetensors"
    if damage == "truncated":
        shutil.copytree(run_dir / "lora", lora)
        path.write_bytes(path.read_bytes()[:1000])
        expected = f"{path}: not a valid LoRA file ("
    else:
        model = RealFillModule(TinyStableDiffusionInpainting(seed=0), lora=LoraSettings(rank=4))
        model.save_lora(lora)
        expected = f"{path}: LoRA rank 4 does not fit model.lora.rank 8"
    with pytest.raises(SystemExit) as exit_info:
        sample(["--config", str(run_dir / "config.yaml"), f"--lora={lora}", *FAST_SAMPLING])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"realfill: error: {expected}")


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("--out={afile}/sub", "--out: {afile} is not a folder"),
        ("--resolution=3", "resolution=3 must be a multiple of 4 and at least 8, which {model}"),
        ("--resolution=4", "resolution=4 must be a multiple of 4 and at least 8, which {model}"),
    ],
    ids=["out-under-a-file", "resolution-not-a-multiple", "resolution-too-small"],
)
def test_an_out_under_a_file_or_a_resolution_the_model_cannot_take_is_one_line(
    run_dir, tmp_path, capsys, argument, expected
):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        config = ["--config", str(run_dir / "config.yaml"), *FAST_SAMPLING]
        sample([*config, "--num_samples=1", argument.format(afile=afile)])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    expected = expected.format(afile=afile, model="TinyStableDiffusionInpainting needs")
    assert stderr.strip().splitlines()[-1] == f"realfill: error: {expected}"
    assert afile.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_sigterm_stops_sampling_and_leaves_no_staged_candidates(run_dir, tmp_path, monkeypatch):
    """Lightning's handler only records a SIGTERM and its predict loop never checks: sampling
    stops before the next batch, the staged candidates are removed and nothing is written."""
    predict, batches = CandidateSampler.predict_step, []

    def terminated_in_the_first_batch(self, seeds, batch_idx):
        batches.append(batch_idx)
        if batch_idx == 0:
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)  # Lightning's
            os.kill(os.getpid(), signal.SIGTERM)
        return predict(self, seeds, batch_idx)

    monkeypatch.setattr(CandidateSampler, "predict_step", terminated_in_the_first_batch)
    out = tmp_path / "out"
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit):  # SIGTERMException, or the CLI's exit status for it
            config = ["--config", str(run_dir / "config.yaml"), *FAST_SAMPLING]
            sample([*config, "--num_samples=6", f"--out={out}"])
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert batches == [0]
    assert not list(tmp_path.glob(".*")) and not out.exists()


def sample_exit(args: list[str]) -> int:
    """The exit status of `realfill.sample` with `args` (0 if it returned)."""
    try:
        sample(args)
    except SystemExit as exit_info:
        return exit_info.code
    return 0


def test_a_users_file_inside_an_out_that_looks_like_ours_is_refused(run_dir, tmp_path, capsys):
    """Defect 1: `X/candidates/holiday.jpg` was replaced with the folder it is in."""
    out = tmp_path / "X"
    (out / "candidates").mkdir(parents=True)
    (out / "candidates" / "holiday.jpg").write_bytes(b"photo")
    config = ["--config", str(run_dir / "config.yaml"), *FAST_SAMPLING, "--num_samples=1"]
    assert sample_exit([*config, f"--out={out}"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        f"realfill: error: {out}/candidates/holiday.jpg: realfill did not write it; "
        f"choose another output folder ({out} would be replaced)"
    ]
    assert (out / "candidates" / "holiday.jpg").read_bytes() == b"photo"


@pytest.mark.parametrize("stage", ["sampling", "ranking"])
def test_sigterm_stops_within_moments_exits_143_and_keeps_the_old_output(
    run_dir, tmp_path, monkeypatch, capsys, stage
):
    """Defect 4: the only batch ignored a SIGTERM (checked between batches), wrote and exited
    0; after predicting, Lightning had put the default handler back, so a SIGTERM while
    ranking killed the process, skipping its clean-up. Now the denoising loop stops at its
    next step, ranking at once: exit 143, the earlier selection kept, nothing left behind."""
    import realfill.sample as sample_command

    out = tmp_path / "out"
    config = ["--config", str(run_dir / "config.yaml"), *FAST_SAMPLING, f"--out={out}"]
    sample([*config, "--num_samples=1"])
    before = candidate_bytes(out)
    owner, name = {
        "sampling": (CandidateSampler, "predict_step"),
        "ranking": (sample_command, "ranked_scores"),
    }[stage]
    original = getattr(owner, name)

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # Lightning's handler records it while sampling
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, terminated)
    handler = signal.getsignal(signal.SIGTERM)
    try:
        status = sample_exit([*config, "--num_samples=2", "--seed=7"])
        assert signal.getsignal(signal.SIGTERM) == handler
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert status == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == "realfill: stopped by SIGTERM"
    assert candidate_bytes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_second_sample_into_the_same_out_is_refused_and_a_lookalike_kept(
    run_dir, tmp_path, capsys, lock_held_elsewhere
):
    """Defect 7: concurrent runs shared one fixed staging folder `.out-samples`, which each
    deleted (a user's folder so named included). Now the output is locked while written."""
    out = tmp_path / "out"
    lookalike = tmp_path / ".out-samples"
    lookalike.mkdir()
    (lookalike / "mine.txt").write_text("keep")
    config = ["--config", str(run_dir / "config.yaml"), *FAST_SAMPLING, "--num_samples=1"]
    with lock_held_elsewhere(out):
        assert sample_exit([*config, f"--out={out}"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"realfill: error: {out}: another realfill command is writing it now; wait for it to "
        "end or choose another output folder"
    )
    assert not out.exists()
    assert sample_exit([*config, f"--out={out}"]) == 0
    assert (lookalike / "mine.txt").read_text() == "keep"


def test_a_full_disk_while_writing_is_one_line_and_keeps_the_old_output(
    run_dir, tmp_path, monkeypatch, capsys
):
    """Defect 13: ENOSPC while the selection is written printed a traceback."""
    out = tmp_path / "out"
    config = ["--config", str(run_dir / "config.yaml"), *FAST_SAMPLING, f"--out={out}"]
    sample([*config, "--num_samples=1"])
    before = candidate_bytes(out)

    def no_space(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("realfill.selection.writing.shutil.copyfile", no_space)
    assert sample_exit([*config, "--num_samples=2"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"realfill: error: {out}: cannot be written (No space left on device); the earlier "
        "output is kept"
    )
    assert candidate_bytes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_copied_run_samples_into_the_copy_not_the_original(run_dir, tmp_path):
    """Defect 6: config.yaml records the absolute run dir, so sampling a copy replaced the
    original's completions. The run dir is the folder of the config given."""
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("completions", "other"))
    original = sorted(p.name for p in run_dir.iterdir())
    sample(["--config", str(copy / "config.yaml"), *FAST_SAMPLING, "--num_samples=1"])
    assert sorted(candidate_bytes(copy / "completions")) == [0]
    assert sorted(p.name for p in run_dir.iterdir()) == original
