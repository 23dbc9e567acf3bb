"""The Python API: a short script fits, samples and evaluates, and reads what they made."""

import json
import runpy
import shutil
from pathlib import Path

import pytest

from realfill.api import fit
from realfill.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SHORT_SIDE = 96
"""A small scene keeps the fit and the evaluation fast."""
SCRIPT = """
from realfill.api import evaluate, fit, sample

fast = {{"trainer.max_steps": 2, "data.batch_size": 2}}
fast |= {{"selection.num_samples": 2, "selection.num_inference_steps": 2}}
run = fit("{repo}/configs/tiny.yaml", scene_dir="{scene}", run_dir="{run}", overrides=fast)
best = run.completions.best
best_path, best_score = run.completions.path(best), best.score
more = sample(run.run_dir, out="{results}/{name}/completions", overrides={{"num_samples": 3}})
report = evaluate("{benchmark}", {{"realfill": "{results}"}}, out="{report}")
"""


def test_a_script_fits_samples_and_evaluates_through_the_python_api(motorcycle_builder, tmp_path):
    name = "motorcycle_inpaint"
    built, benchmark = tmp_path / "built", tmp_path / "benchmark"
    motorcycle_builder.build_benchmark(built, SHORT_SIDE, jpeg_quality=90)
    shutil.copytree(built / name, benchmark / name)  # one scene: results for it alone
    paths = {key: tmp_path / key for key in ("run", "results", "report")}
    script = tmp_path / "script.py"
    script.write_text(
        SCRIPT.format(repo=REPO, scene=benchmark / name, benchmark=benchmark, name=name, **paths)
    )
    made = runpy.run_path(str(script))
    run, best_path, best_score = made["run"], made["best_path"], made["best_score"]
    assert run.run_dir == paths["run"].resolve() and run.config.is_file()
    assert (run.lora_dir / "pytorch_lora_weights.safetensors").is_file()
    records = json.loads((run.run_dir / "completions" / "scores.json").read_text())
    assert best_path == run.run_dir / "completions" / records[0]["file"] and best_path.is_file()
    assert best_score == records[0]["score"] and len(run.completions.candidates) == 2
    more = made["more"]
    assert [c.seed for c in sorted(more.candidates, key=lambda c: c.seed)] == [0, 1, 2]
    assert more.out_dir == paths["results"] / name / "completions" and more.keep == 1
    report = made["report"]
    assert report.summary.is_file() and "| realfill |" in report.summary.read_text()
    assert {result.method for result in report.candidates} == {"realfill"}


def test_a_setting_the_command_refuses_raises_its_one_line_error(tmp_path):
    """Not the config parser's wrapping of it, and not an exit: a script can catch it."""
    expected = "^SelectionSettings: seed and match_margin must be >= 0, got -5 and 0$"
    with pytest.raises(ConfigError, match=expected):
        fit(
            REPO / "configs" / "tiny.yaml",
            run_dir=tmp_path,
            overrides={"selection.seed": -5},
        )
