"""The whole RealFill job timed as a user runs it: `realfill.fit` with configs/realfill.yaml on
full-size SD2 inpainting (random weights), then 64 candidates sampled, composited and ranked.

    python benchmarks/end_to_end.py [--trainer.max_steps=200 ...]

The scene is examples/motorcycle's hole-centred square, so that a candidate is the 512x512
completion the speed targets count.

Runs `max_steps` training steps (benchmarks/end_to_end.yaml) and extrapolates the paper's 2000
from the steady step time after warm-up (the warm-up includes torch.compile, which
configs/realfill.yaml turns on; a second run on the same machine reuses inductor's cache), and
its 64 candidates from the selection time per candidate, whose stages it records. Extra
arguments go to `realfill.fit`. Writes `<out>/end_to_end.json` at the end, and the stage marks
reached so far to `<out>/end_to_end_marks.json` as they come (`StageClock`).
"""

import datetime
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from square_scene import square_scene  # noqa: E402
from stage_clock import StageClock  # noqa: E402

from realfill.callbacks import CompleteTarget  # noqa: E402
from realfill.fit import main as fit  # noqa: E402
from realfill.io import write_json  # noqa: E402
from realfill.modules.sampling import sampling_canvas  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PAPER_STEPS = 2000
PAPER_CANDIDATES = 64
EXAMPLE_SCENE = REPO / "examples" / "motorcycle"
"""Trained on and completed as its hole-centred square (512x512 completions, the targets'
unit; see square_scene.py); a `--data.scene_dir` argument replaces it as it is."""


def completion_size(cli) -> tuple[int, int]:
    """(width, height) the run's candidates are sampled at (the padded canvas)."""
    data, base = cli.datamodule, cli.model.base_model
    return sampling_canvas(*data.scene.target.size, data.resolution, base.sampling_multiple).canvas


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    configs = ["--config", str(REPO / "configs" / "realfill.yaml")]
    configs += ["--config", str(REPO / "benchmarks" / "end_to_end.yaml")]
    with tempfile.TemporaryDirectory(prefix="square-scene-") as scratch:
        configs.append(f"--data.scene_dir={square_scene(EXAMPLE_SCENE, scratch)}")
        start = time.perf_counter()
        with warnings.catch_warnings():  # these args are this command line's, extended
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            cli = fit([*configs, *argv])
        total = time.perf_counter() - start
    clock = next(c for c in cli.trainer.callbacks if isinstance(c, StageClock))
    m = clock.marks
    step = (m["train_end"] - m["steady_start"]) / clock.steady_steps
    startup = m["train_start"] - start
    warmup = m["steady_start"] - m["train_start"]
    selection = m["selection_end"] - m["train_end"]
    steps = cli.trainer.global_step
    completion = next(c for c in cli.trainer.callbacks if isinstance(c, CompleteTarget))
    candidates = completion.num_samples
    results = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU",
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "training_steps": steps,
        "batch_size": cli.datamodule.batch_size,
        "completion_size": "x".join(map(str, completion_size(cli))),
        "precision": str(cli.trainer.precision),
        "seconds_total": total,
        "seconds_startup": startup,
        "seconds_warmup_steps": warmup,
        "seconds_per_steady_step": step,
        "seconds_selection": selection,
        "num_candidates": candidates,
        "seconds_selection_stages": completion.stage_seconds,
        "estimated_minutes_paper_run": (
            startup
            + warmup
            + (PAPER_STEPS - clock.warmup_steps) * step
            + selection * PAPER_CANDIDATES / candidates
        )
        / 60,
    }
    out = Path(os.environ.get("OUT", cli.trainer.default_root_dir))
    write_json(results, out / "end_to_end.json")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
