"""`realfill.benchmark --engine ray` on a local Ray with two worker processes: scenes spread
over the workers, a worker killed mid-scene is retried, a scene that always kills its worker
is reported by name with a non-zero exit, and a re-run skips the finished scenes."""

import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from PIL import Image

from realfill import distributed
from realfill.benchmark import FAILED_SCENES_EXIT_CODE, main
from realfill.errors import ConfigError

ray = pytest.importorskip("ray")


FAST = {
    "trainer": {
        "callbacks": [
            {
                "class_path": "realfill.callbacks.CompleteTarget",
                "init_args": {"num_samples": 2, "keep": 1, "num_inference_steps": 2},
            }
        ]
    },
    "data": {"batch_size": 2},
}
"""Two short candidates per scene, one kept: the engine is under test, not the completions."""
TINY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
WORKERS = 2
"""Worker slots of the local Ray (one CPU each, one scene each)."""
DYING_CALLBACK = '''
import os
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class KillWorker(Callback):
    """Ends the worker process abruptly (no exception, no cleanup) when the fit of `scene`
    starts, on the first `times` attempts; each attempt adds a line to `attempts`."""

    def __init__(self, scene: str, attempts: str, times: int):
        self.scene, self.attempts, self.times = scene, Path(attempts), times

    def on_train_start(self, trainer, pl_module):
        if Path(trainer.default_root_dir).parent.name != self.scene:
            return
        before = self.attempts.read_text().count("\\n") if self.attempts.exists() else 0
        with self.attempts.open("a") as log:
            log.write(f"{os.getpid()}\\n")
        if before < self.times:
            os._exit(1)
'''


def add_scene(make_scene, benchmark: Path, name: str) -> Path:
    """A tiny scene with a ground truth (its target: the test scores nothing)."""
    scene = make_scene(benchmark / name)
    Image.open(scene / "target" / "target.png").save(scene / "target" / "gt.png")
    return scene


def kill_flag(scene: str, attempts: Path, times: int) -> str:
    """A realfill.fit flag adding the callback that kills the worker fitting `scene`."""
    callback = {
        "class_path": "dying_callback.KillWorker",
        "init_args": {"scene": scene, "attempts": str(attempts), "times": times},
    }
    return f"--trainer.callbacks+={yaml.safe_dump(callback, default_flow_style=True).strip()}"


@pytest.mark.slow
def test_ray_benchmark_retries_a_killed_worker_and_reports_a_scene_that_always_dies(
    tmp_path, run_command, make_scene, monkeypatch
):
    (tmp_path / "dying_callback.py").write_text(textwrap.dedent(DYING_CALLBACK))
    pythonpath = [str(tmp_path), os.environ.get("PYTHONPATH")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, pythonpath)))  # to the workers
    bench = tmp_path / "benchmark"
    for name in ("alpha", "beta"):
        add_scene(make_scene, bench, name)
    preset = tmp_path / "fast.yaml"
    preset.write_text(yaml.safe_dump(FAST))
    out = tmp_path / "out"
    common = [
        f"--config={TINY_CONFIG}",
        f"--config={preset}",
        f"--benchmark={bench}",
        f"--out={out}",
        "--methods",
        "realfill",
        "opencv",
        "--engine=ray",
        f"--ray_num_cpus={WORKERS}",
        "--gpus_per_scene=0",
        "--max_retries=1",
        "--trainer.max_steps=2",
    ]
    once, always = tmp_path / "beta-attempts.txt", tmp_path / "gamma-attempts.txt"
    first = run_command("realfill.benchmark", *common, kill_flag("beta", once, times=1))
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(once.read_text().splitlines()) == 2  # killed once, then completed
    summary = (out / "report" / "summary.md").read_text()
    for name in ("alpha", "beta"):
        csv = (out / "report" / f"{name}.csv").read_text().splitlines()
        assert len(csv) == 1 + 2 + 1, csv  # header, realfill's two candidates, opencv's one
    assert "| realfill |" in summary and "| opencv |" in summary
    pids = {line for line in once.read_text().splitlines()}
    assert len(pids) == 2  # the retry ran in a new worker process

    add_scene(make_scene, bench, "gamma")
    shutil.rmtree(out / "report")
    second = run_command("realfill.benchmark", *common, kill_flag("gamma", always, times=9))
    assert second.returncode == FAILED_SCENES_EXIT_CODE, second.stderr[-3000:]
    assert len(always.read_text().splitlines()) == 2  # the first run and its one retry
    failed = [line for line in second.stderr.splitlines() if "failed" in line]
    assert any(line.startswith("gamma / realfill: failed: ") for line in failed), failed
    assert "1 of 6 scene jobs failed" in second.stderr.strip().splitlines()[-1]
    assert second.stdout.count("completions exist, skipped") == 4  # alpha and beta: resumed
    assert "gamma / opencv: completed" in second.stdout
    assert not (out / "report").exists()  # no report with a scene missing


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--ray_address=auto"], "need --engine ray"),
        (["--engine=ray", "--ray_address=auto", "--ray_num_cpus=2"], "has its own"),
    ],
)
def test_ray_flags_that_cannot_apply_stop_before_anything_runs(tmp_path, capsys, flags, reason):
    with pytest.raises(SystemExit) as exit_info:
        main([f"--config={TINY_CONFIG}", f"--benchmark={tmp_path}", *flags])
    assert exit_info.value.code == 2
    assert reason in capsys.readouterr().err


def test_without_ray_the_engine_is_refused_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without it imports
    with pytest.raises(ConfigError, match=r"pip install -e \"\.\[cluster\]\""):
        distributed.import_ray()


def test_a_job_no_machine_can_hold_is_refused_rather_than_queued_forever(monkeypatch):
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    distributed.check_resources(distributed.Resources(gpus=0, cpus=2, max_retries=0))
    with pytest.raises(ConfigError, match="--gpus_per_scene 1: the Ray cluster has 0 GPUs"):
        distributed.check_resources(distributed.Resources(gpus=1, cpus=1, max_retries=0))
    with pytest.raises(ConfigError, match="--cpus_per_scene 4: the Ray cluster has 2 CPUs"):
        distributed.check_resources(distributed.Resources(gpus=0, cpus=4, max_retries=0))


def test_a_failure_is_one_line_naming_its_cause():
    cause = ValueError("bad value\nmore detail")
    wrapped = ray.exceptions.RayTaskError("complete_job", "traceback...", cause)
    assert distributed.one_line(wrapped) == "ValueError: bad value"
    assert distributed.one_line(RuntimeError("")) == "RuntimeError: "
