"""`python -m realfill.evaluate` on hand-made results, and its one-line user errors."""

import json
import math
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from realfill import api
from realfill.data import load_scene
from realfill.evaluate import main, method_names
from realfill.evaluation.results import (
    BenchmarkError,
    CandidateResult,
    load_candidate_results,
    load_yaml,
    read_scores,
    save_candidate_results,
)
from realfill.selection.writing import write_selection


def write_results(benchmark: Path, results: Path) -> None:
    """For each scene: the ground truth itself (seed 0, selected) and a grey fill (seed 1)."""
    for scene_dir in sorted(benchmark.iterdir()):
        scene = load_scene(scene_dir)
        grey = Image.composite(
            Image.new("RGB", scene.target.size, (128,) * 3), scene.target, scene.mask
        )
        out = results / scene.name / "completions"
        write_selection(out, [scene.ground_truth, grey], [0, 1], [10, 2], keep=1)


def test_evaluate_writes_the_report_with_unavailable_metrics(
    motorcycle_benchmark, tmp_path, capsys
):
    results, report = tmp_path / "results", tmp_path / "report"
    write_results(motorcycle_benchmark, results)
    no_model = str(tmp_path / "absent")
    summary = main(
        [
            f"--benchmark={motorcycle_benchmark}",
            "--results",
            str(results),
            "--method=perfect",
            f"--out={report}",
            f"--dino_model={no_model}",
            f"--clip_model={no_model}",
        ]
    )
    text = summary.read_text()
    assert "| method | PSNR ↑ | SSIM ↑ | LPIPS ↓ | DreamSim ↓ | DINO ↑ | CLIP ↑ |" in text
    # the selection is the ground truth itself: the best possible masked values
    assert "| perfect | inf | 1.000 |" in text
    assert "DINO ↑: unavailable" in text and "CLIP ↑: unavailable" in text
    assert "The paper's protocol (RealFill, Table 1): PSNR, SSIM and LPIPS inside the mask" in text
    assert "| paper: RealFill | 14.78 | 0.424 | 0.431 | 0.077 | 0.948 | 0.962 |" in text
    summary_json = json.loads((report / "summary.json").read_text())
    assert summary_json["protocol"]["lpips_region"] == "mask"
    rows = (report / "motorcycle_inpaint.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].split(",")[7] == "inf"  # seed 0, ranked first
    assert rows[0].split(",")[3] == "score" and rows[1].split(",")[3] == "10"  # matches, an int
    assert float(rows[2].split(",")[7]) < 20  # the grey fill is scored too
    assert len(rows[2].split(",")[7].split(".")[1]) > 3  # at full precision, unlike the tables
    assert (report / "plots" / "score_vs_ssim.png").is_file()
    assert (report / "plots" / "ssim_per_scene.png").is_file()
    assert "unavailable" in capsys.readouterr().err


@pytest.mark.parametrize("broken", ["gt", "completions"])
def test_bad_input_is_one_line_naming_the_file_and_exit_code_2(
    broken, motorcycle_benchmark, tmp_path, capsys, monkeypatch
):
    """Found before the metric networks load (downloads, hub retries)."""
    monkeypatch.setattr(api, "MetricSuite", lambda *_: pytest.fail("networks loaded"))
    benchmark = tmp_path / "benchmark"
    shutil.copytree(motorcycle_benchmark, benchmark)
    results = tmp_path / "results"
    write_results(benchmark, results)
    if broken == "gt":
        missing = benchmark / "motorcycle_outpaint" / "target" / "gt.png"
        missing.unlink()
    else:
        missing = results / "motorcycle_outpaint" / "completions" / "scores.json"
        shutil.rmtree(missing.parent)
    with pytest.raises(SystemExit) as exit_info:
        main([f"--benchmark={benchmark}", "--results", str(results), f"--out={tmp_path / 'r'}"])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and str(missing) in errors[0]


def test_results_folders_of_the_same_name_are_told_apart_by_their_parents(tmp_path):
    folders = [tmp_path / "exp1" / "realfill", tmp_path / "exp2" / "realfill", tmp_path / "geo"]
    assert method_names(folders) == ["exp1/realfill", "exp2/realfill", "geo"]
    assert method_names(folders[::2]) == ["realfill", "geo"]
    assert method_names([Path("/realfill"), tmp_path / "realfill"]) == [
        "realfill",
        f"{tmp_path.name}/realfill",
    ]
    with pytest.raises(BenchmarkError, match="given twice"):
        method_names([folders[0], folders[0]])


def test_a_scores_json_with_a_malformed_value_is_one_line_naming_the_file(tmp_path):
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps([{"seed": "abc", "score": 1, "rank": 1, "file": "x.png"}]))
    with pytest.raises(BenchmarkError, match=f"{scores}: not a valid scores.json"):
        read_scores(tmp_path)


def evaluate_exit(benchmark: Path, results: Path, out: Path) -> int:
    """The exit status of `realfill.evaluate` on one results folder (0 if it returned)."""
    try:
        main([f"--benchmark={benchmark}", "--results", str(results), f"--out={out}"])
    except SystemExit as exit_info:
        return exit_info.code
    return 0


def test_a_file_entry_outside_the_results_folder_is_refused(
    motorcycle_benchmark, tmp_path, capsys, monkeypatch
):
    """Defect 10: `../../gt.png` in scores.json scored the ground truth itself (PSNR inf)."""
    monkeypatch.setattr(api, "MetricSuite", lambda *_: pytest.fail("networks loaded"))
    benchmark = tmp_path / "benchmark"
    shutil.copytree(motorcycle_benchmark, benchmark)
    results = tmp_path / "results"
    write_results(benchmark, results)
    completions = results / "motorcycle_inpaint" / "completions"
    gt = benchmark / "motorcycle_inpaint" / "target" / "gt.png"
    (completions / "candidates" / "linked.png").symlink_to(gt)
    scores_file = completions / "scores.json"
    for escape in (os.path.relpath(gt, completions), str(gt), "candidates/linked.png"):
        records = json.loads(scores_file.read_text())
        records[1]["file"] = escape
        scores_file.write_text(json.dumps(records))
        assert evaluate_exit(benchmark, results, tmp_path / "report") == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert error == [
            f"realfill: error: {scores_file}: not a valid scores.json (seed 1: file "
            f"{escape!r} is not a file in {completions})"
        ]
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[]", "not a non-empty list of seed/score/rank/file records"),
        ("{}", "not a non-empty list of seed/score/rank/file records"),
        ("[1, 2]", "a record is not a mapping of seed, score, rank, file"),
        ('[{"seed": 0, "rank": 1, "file": "candidates/seed00000.png"}]', "a record is not"),
        ('[{"seed": 0, "score": "NaN", "rank": 1, "file": "candidates/seed00000.png"}]',
         "seed 0: score 'NaN' is not a number >= 0"),
        ('[{"seed": 0, "score": NaN, "rank": 1, "file": "candidates/seed00000.png"}]',
         "seed 0: score nan is not a number >= 0"),
        ('[{"seed": true, "score": 1, "rank": 1, "file": "candidates/seed00000.png"}]',
         "seed True, rank 1: not integers"),
        ('[{"seed": 0, "score": 1, "rank": 2, "file": "candidates/seed00000.png"}]',
         "the ranks are not 1 to 1"),
        ("not json", "not a scores.json list (invalid JSON"),
        ('[{"seed": 0, "score": 1, "rank": 1, "file": null}]', "seed 0: file None is not a file"),
    ],
)  # fmt: skip
def test_a_malformed_scores_json_is_one_line_and_exit_code_2(
    content, problem, motorcycle_benchmark, tmp_path, capsys, monkeypatch
):
    """Defect 9: a malformed scores.json was a traceback, or (`[]`) silently dropped."""
    monkeypatch.setattr(api, "MetricSuite", lambda *_: pytest.fail("networks loaded"))
    results = tmp_path / "results"
    write_results(motorcycle_benchmark, results)
    scores_file = results / "motorcycle_inpaint" / "completions" / "scores.json"
    scores_file.write_text(content)
    assert evaluate_exit(motorcycle_benchmark, results, tmp_path / "report") == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"realfill: error: {scores_file}: ")
    assert problem in error[0]


def test_a_users_report_folder_is_refused_before_scoring_and_left_alone(
    motorcycle_benchmark, tmp_path, capsys, monkeypatch
):
    """Defect 3: `--out D` overwrote the user's summary.md and CSVs in D."""
    monkeypatch.setattr(api, "MetricSuite", lambda *_: pytest.fail("networks loaded"))
    results, report = tmp_path / "results", tmp_path / "D"
    write_results(motorcycle_benchmark, results)
    report.mkdir()
    (report / "summary.md").write_text("my summary")
    (report / "motorcycle_inpaint.csv").write_text("my,table")
    assert evaluate_exit(motorcycle_benchmark, results, report) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        f"realfill: error: {report}/motorcycle_inpaint.csv: realfill did not write it; "
        f"choose another output folder ({report} would be replaced)"
    ]
    assert (report / "summary.md").read_text() == "my summary"


def test_a_report_of_the_previous_version_is_replaced(motorcycle_benchmark, tmp_path):
    """No manifest: replaced if its summary.json is realfill's and it holds only its names."""
    results, report = tmp_path / "results", tmp_path / "report"
    write_results(motorcycle_benchmark, results)
    report.mkdir()
    (report / "old_scene.csv").write_text("old")
    (report / "summary.json").write_text('{"methods": {}, "scenes": [], "unavailable": {}}')
    args = [f"--benchmark={motorcycle_benchmark}", "--results", str(results), f"--out={report}"]
    main([*args, f"--dino_model={tmp_path / 'absent'}", f"--clip_model={tmp_path / 'absent'}"])
    assert not (report / "old_scene.csv").exists() and (report / "summary.md").is_file()


def test_cached_results_are_strict_json_and_keep_an_infinite_psnr(tmp_path):
    result = CandidateResult("realfill", "scene", 0, 3, 1, True, "c.png", {"psnr": math.inf})
    result.metrics["dino"] = None  # unavailable
    path = tmp_path / "cache.json"
    save_candidate_results([result], path)
    json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert load_candidate_results(path) == [result]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"metrics: [unclosed\n", "not valid YAML"),
        (b"metrics:\n  device: caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 22)"),
    ],
    ids=["not-yaml", "not-utf8"],
)
def test_a_metrics_config_that_cannot_be_read_is_one_line_naming_it(
    motorcycle_benchmark, tmp_path, capsys, content, expected
):
    broken = tmp_path / "metrics.yaml"
    broken.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                f"--benchmark={motorcycle_benchmark}",
                "--results",
                str(tmp_path),
                f"--metrics_config={broken}",
            ]
        )
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"realfill: error: {broken}: {expected}")


def test_a_yaml_file_that_cannot_be_read_is_one_error_naming_it(tmp_path):
    with pytest.raises(BenchmarkError, match=f"^{tmp_path}: cannot be read \\(Is a directory\\)$"):
        load_yaml(tmp_path)


@pytest.mark.parametrize("blocked", ["file", "read-only"])
def test_an_out_that_cannot_be_written_stops_before_the_metrics_load(
    blocked, motorcycle_benchmark, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(api, "MetricSuite", lambda *_: pytest.fail("networks loaded"))
    results = tmp_path / "results"
    write_results(motorcycle_benchmark, results)
    out = tmp_path / "report"
    if blocked == "file":
        out.write_text("not a folder")
        expected = f"--out: {out} is not a folder"
    else:
        out.mkdir()
        out.chmod(0o555)
        if os.access(out, os.W_OK):
            pytest.skip("this user writes into read-only folders (root)")
        expected = f"--out: {out} cannot be written: no permission in {out}"
    with pytest.raises(SystemExit) as exit_info:
        main([f"--benchmark={motorcycle_benchmark}", "--results", str(results), f"--out={out}"])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"realfill: error: {expected}")


def test_the_published_numbers_in_the_docs_are_the_ones_reports_print():
    from realfill.evaluation.published import PUBLISHED
    from realfill.evaluation.report import markdown_table

    docs = (Path(__file__).resolve().parents[2] / "docs" / "evaluation.md").read_text()
    assert markdown_table(PUBLISHED, "published") in docs
