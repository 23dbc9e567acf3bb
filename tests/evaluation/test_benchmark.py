"""`python -m realfill.benchmark` on the tiny model over a real scene: report, resumability."""

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import realfill.benchmark as benchmark_command
from realfill.benchmark import main
from realfill.evaluation.harness import load_metric_settings
from realfill.evaluation.results import BenchmarkError
from realfill.selection import SelectionSettings

REPO = Path(__file__).resolve().parents[2]
FAST = {
    "selection": {
        "num_samples": 2,
        "keep": 1,
        "num_inference_steps": 2,
        "matcher": {"class_path": "realfill.selection.SIFTMatcher", "init_args": {"max_side": 96}},
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
    matchers = []
    ranking_matcher = SelectionSettings.ranking_matcher

    def recording_matcher(self):
        matcher = ranking_matcher(self)
        matchers.append((type(matcher).__name__, matcher.max_side))
        return matcher

    monkeypatch.setattr(SelectionSettings, "ranking_matcher", recording_matcher)
    summary = main(args)
    assert set(matchers) == {("SIFTMatcher", 96)}  # the config's matcher ranked every method
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


def refused(args: list[str], capsys) -> str:
    """The one line the benchmark refused `args` with (exit code 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def scoring(tmp_path: Path, monkeypatch, content: bytes) -> tuple[Path, list, object, Path]:
    """One written candidate of a scene, a spy in place of its evaluation and default metric
    settings: (the candidate, the evaluations made, the suite, the scene)."""
    candidate = tmp_path / "realfill" / "scene" / "completions" / "candidates" / "seed00000.png"
    candidate.parent.mkdir(parents=True)
    candidate.write_bytes(content)
    evaluations = []
    monkeypatch.setattr(
        benchmark_command, "evaluate_scene", lambda *args: evaluations.append(args) or []
    )
    suite = SimpleNamespace(settings=load_metric_settings(None, {}), unavailable={})
    return candidate, evaluations, suite, tmp_path / "benchmark" / "scene"


def test_scores_are_computed_again_once_the_completions_are_written_again(tmp_path, monkeypatch):
    candidate, evaluations, suite, scene = scoring(tmp_path, monkeypatch, b"first")
    benchmark_command.scored("realfill", scene, tmp_path, suite)
    benchmark_command.scored("realfill", scene, tmp_path, suite)
    assert len(evaluations) == 1  # cached
    candidate.write_bytes(b"second, redone")
    benchmark_command.scored("realfill", scene, tmp_path, suite)
    assert len(evaluations) == 2


def test_a_config_that_is_not_yaml_stops_with_one_line_naming_it(
    motorcycle_benchmark, tmp_path, capsys
):
    broken = tmp_path / "broken.yaml"
    broken.write_text("trainer: [unclosed\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(broken), f"--benchmark={motorcycle_benchmark}"])
    assert exit_info.value.code == 2
    assert f"{broken}: not valid YAML" in capsys.readouterr().err.strip().splitlines()[-1]


def test_fit_flags_without_a_method_that_fits_stop_before_anything_runs(
    motorcycle_benchmark, tmp_path, capsys
):
    config = str(REPO / "configs" / "tiny.yaml")
    args = ["--config", config, f"--benchmark={motorcycle_benchmark}", f"--out={tmp_path}"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--methods", "geometric", "--trainer.max_stepz=2"])
    assert exit_info.value.code == 2
    assert "--trainer.max_stepz=2: realfill.fit flags" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("metrics.candidates.json", '[{"method": "realf'),
        ("metrics.candidates.json", '[{"method": "realfill"}]'),
        ("metrics.candidates.json", "[1]"),
        ("metrics.candidates.json", None),
        ("metrics.json", None),
    ],
    ids=["json", "fields", "rows", "missing", "key-missing"],
)
def test_a_damaged_scores_cache_is_a_miss_and_is_rewritten(tmp_path, monkeypatch, name, content):
    _, evaluations, suite, scene = scoring(tmp_path, monkeypatch, b"a candidate")
    assert benchmark_command.scored("realfill", scene, tmp_path, suite) == []
    damaged = tmp_path / "realfill" / "scene" / name
    if content is None:
        damaged.unlink()
    elif isinstance(content, bytes):
        damaged.write_bytes(content)
    else:
        damaged.write_text(content)
    assert benchmark_command.scored("realfill", scene, tmp_path, suite) == []
    assert len(evaluations) == 2  # scored again
    assert benchmark_command.scored("realfill", scene, tmp_path, suite) == []
    assert len(evaluations) == 2  # the rewritten cache is used


def test_a_config_that_is_not_utf8_stops_with_one_line_naming_it(
    motorcycle_benchmark, tmp_path, capsys
):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(binary), f"--benchmark={motorcycle_benchmark}"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"realfill: error: {binary}: not UTF-8 text (byte 0x89 at offset 0)"


def test_a_prompt_that_is_not_utf8_stops_before_anything_runs(
    motorcycle_benchmark, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(benchmark_command, "MetricSuite", lambda *_: pytest.fail("metrics ran"))
    bench = tmp_path / "benchmark"
    shutil.copytree(motorcycle_benchmark, bench)
    prompt = bench / "motorcycle_outpaint" / "prompt.txt"
    prompt.write_bytes(b"\xff\xfe caf\xe9")
    config = str(REPO / "configs" / "tiny.yaml")
    args = ["--config", config, f"--benchmark={bench}", f"--out={tmp_path / 'out'}"]
    error = refused([*args, "--methods", "prompt_only"], capsys)
    assert error == f"realfill: error: {prompt}: not UTF-8 text (byte 0xff at offset 0)"
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_stops_before_anything_runs(
    motorcycle_benchmark, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(benchmark_command, "MetricSuite", lambda *_: pytest.fail("metrics ran"))
    out = tmp_path / "afile"
    out.write_text("not a folder")
    config = str(REPO / "configs" / "tiny.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--config",
                config,
                f"--benchmark={motorcycle_benchmark}",
                f"--out={out}",
                "--methods",
                "realfill",
                "--trainer.max_steps=2",
            ]
        )
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"realfill: error: --out: {out} is not a folder"
    assert out.read_text() == "not a folder"


def test_help_shows_each_options_default(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "output folder (default: runs/benchmark)" in text
    assert "candidates per scene (default: the config's selection: section)" in text


def test_a_users_summary_in_the_report_folder_stops_before_anything_runs(
    motorcycle_benchmark, tmp_path, monkeypatch, capsys
):
    """Defect 3: `--out D` overwrote the user's D/report/summary.md and CSVs."""
    monkeypatch.setattr(benchmark_command, "MetricSuite", lambda *_: pytest.fail("metrics ran"))
    mine = tmp_path / "D" / "report" / "summary.md"
    mine.parent.mkdir(parents=True)
    mine.write_text("my summary")
    config = str(REPO / "configs" / "tiny.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["--config", config, f"--benchmark={motorcycle_benchmark}", f"--out={mine.parents[1]}"]
        )
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"realfill: error: {mine}: realfill did not write it")
    assert mine.read_text() == "my summary"
    assert sorted(p.name for p in mine.parents[1].iterdir()) == ["report"]


@pytest.mark.parametrize(
    "content",
    ['{"psnr": 31.2}', "{bad", "[1, 2]", b"\xff\xfe"],
    ids=["users", "not-json", "list", "binary"],
)
def test_a_metrics_json_the_benchmark_did_not_write_is_never_overwritten(tmp_path, content):
    root = tmp_path / "realfill" / "scene"
    root.mkdir(parents=True)
    mine = root / "metrics.json"
    mine.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(BenchmarkError, match="metrics.json: realfill did not write it"):
        benchmark_command.check_scores_cache(root)
    assert mine.read_bytes() == (content if isinstance(content, bytes) else content.encode())


def test_a_users_metrics_json_in_a_scene_folder_stops_before_anything_runs(
    motorcycle_benchmark, tmp_path, monkeypatch, capsys
):
    """The per-scene scores cache overwrote a user's metrics.json in `--out`."""
    monkeypatch.setattr(benchmark_command, "complete_job", lambda *_: pytest.fail("ran"))
    scene = sorted(p.name for p in motorcycle_benchmark.iterdir() if p.is_dir())[0]
    mine = tmp_path / "D" / "opencv" / scene / "metrics.json"
    mine.parent.mkdir(parents=True)
    mine.write_text('{"psnr": 31.2}')
    config = str(REPO / "configs" / "tiny.yaml")
    args = ["--config", config, f"--benchmark={motorcycle_benchmark}", f"--out={tmp_path / 'D'}"]
    error = refused([*args, "--methods", "opencv"], capsys)
    assert error.startswith(f"realfill: error: {mine}: realfill did not write it")
    assert mine.read_text() == '{"psnr": 31.2}'


def test_a_scores_cache_the_benchmark_wrote_may_be_written_again(tmp_path, monkeypatch):
    _, _, suite, scene = scoring(tmp_path, monkeypatch, b"a candidate")
    benchmark_command.scored("realfill", scene, tmp_path, suite)
    benchmark_command.check_scores_cache(tmp_path / "realfill" / "scene")
    legacy = tmp_path / "realfill" / "scene" / "metrics.json"
    legacy.write_text('{"settings": {}, "unavailable": [], "completions": "0"}')
    benchmark_command.check_scores_cache(tmp_path / "realfill" / "scene")
