"""Does a fit learn the scene? After a short fit of `configs/small.yaml` on a real scene (the
motorcycle stereo pair: the hole over the tank and engine, which only the reference shows),
the model must predict the noise on the hole's *true* content much better than the shipped
base model does (`hole_denoising_error`, sampling-free and deterministic for its seed).

A change that breaks learning can pass every shape test. Measured when this was written
(README, "The small model"): learning rates of zero and the training mask's convention flipped
fail it; the target's hole included in the loss weight does not (not caught in 80 steps).
"""

from pathlib import Path

import pytest
import yaml

from realfill.evaluation.denoising import run_hole_error
from realfill.fit import main as fit

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SMALL_CONFIG = REPO / "configs" / "small.yaml"
SHORT_FIT = {
    "trainer": {"max_steps": 80, "callbacks": [{"class_path": "realfill.callbacks.SaveLoRA"}]}
}
"""configs/small.yaml with fewer steps and no sampling: the same model, method and settings."""
REQUIRED_REDUCTION = 0.2
"""The fitted model's error on the hole's true content must be this much below the base's."""


def test_a_fit_learns_the_true_content_of_the_hole(tmp_path, motorcycle_builder):
    (scene,) = motorcycle_builder.build_benchmark(
        tmp_path / "benchmark",
        short_side=128,
        jpeg_quality=90,
        regions={"motorcycle_tank": ("inpaint", motorcycle_builder.HOLE)},
    )
    preset = tmp_path / "short_fit.yaml"
    preset.write_text(yaml.safe_dump(SHORT_FIT))
    run_dir = tmp_path / "run"
    fit(
        [
            "--config",
            str(SMALL_CONFIG),
            "--config",
            str(preset),
            f"--data.scene_dir={scene}",
            f"--trainer.default_root_dir={run_dir}",
        ]
    )
    model = yaml.safe_load(SMALL_CONFIG.read_text())["model"]
    settings = {
        "base_model": str(REPO / model["base_model"]["init_args"]["pretrained_model_name_or_path"]),
        "prompt": model["prompt"],
        "resolution": 128,
    }
    base = run_hole_error(scene, None, **settings)
    fitted = run_hole_error(scene, run_dir, **settings)
    print(f"hole denoising error: base {base:.4f}, fitted {fitted:.4f}")
    assert fitted < (1 - REQUIRED_REDUCTION) * base, (base, fitted)
