"""How much a fit learns of a hole's true content, sampling-free: fit `configs/small.yaml` (or
`--config`) on a scene with ground truth, then compare `hole_denoising_error` of the fitted
model with the base model's. Every other `--section.key=value` flag goes to realfill.fit::

    python examples/make_motorcycle.py --benchmark runs/motorcycle_benchmark
    python benchmarks/learning.py --scene runs/motorcycle_benchmark/motorcycle_inpaint \\
        --steps 80 --model.lora.init=gaussian

It prints and returns {"base": ..., "fitted": ..., "reduction": ...} (lower error is better).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path
from unittest.mock import patch

import yaml

from realfill.evaluation.denoising import run_hole_error
from realfill.fit import main as fit

REPO = Path(__file__).resolve().parents[1]


def measure(config: Path, scene: Path, steps: int, fit_args: list[str], resolution: int) -> dict:
    """Fit `steps` steps (no sampling) in a scratch run dir and compare the hole errors."""
    with tempfile.TemporaryDirectory(prefix="realfill-learning-") as scratch:
        run_dir = Path(scratch) / "run"
        preset = Path(scratch) / "preset.yaml"
        only_lora = {"callbacks": [{"class_path": "realfill.callbacks.SaveLoRA"}]}
        no_selection = {"selection": None}  # the end-of-fit sampling
        preset.write_text(
            yaml.safe_dump({"trainer": {"max_steps": steps, **only_lora}, **no_selection})
        )
        with patch.object(sys, "argv", sys.argv[:1]):
            fit(
                [
                    "--config",
                    str(config),
                    "--config",
                    str(preset),
                    f"--data.scene_dir={scene}",
                    f"--trainer.default_root_dir={run_dir}",
                    *fit_args,
                ]
            )
        resolved = yaml.safe_load((run_dir / "config.yaml").read_text())["model"]
        settings = {
            "base_model": resolved["base_model"]["init_args"]["pretrained_model_name_or_path"],
            "prompt": resolved["prompt"],
            "resolution": resolution,
        }
        base = run_hole_error(scene, None, **settings)
        fitted = run_hole_error(scene, run_dir, **settings)
    return {"base": base, "fitted": fitted, "reduction": 1 - fitted / base}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "small.yaml")
    parser.add_argument("--scene", type=Path, required=True, help="scene with target/gt.png")
    parser.add_argument("--steps", type=int, default=80, help="training steps")
    parser.add_argument("--resolution", type=int, default=128, help="measuring resolution")
    options, fit_args = parser.parse_known_args()
    result = measure(options.config, options.scene, options.steps, fit_args, options.resolution)
    print(json.dumps({"fit_args": fit_args, "steps": options.steps, **result}, indent=2))
    return result


if __name__ == "__main__":
    main()
