"""Every base-model config parses offline and prints complete (the model is not loaded)."""

from pathlib import Path

import pytest
import yaml

from realfill.fit import main
from realfill.modules.settings import migrate_flat_settings

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

BASE_MODEL_CONFIGS = {
    "realfill.yaml": "realfill.modules.StableDiffusionInpainting",
    "small.yaml": "realfill.modules.StableDiffusionInpainting",
    "sd15.yaml": "realfill.modules.StableDiffusionInpainting",
    "sdxl.yaml": "realfill.modules.StableDiffusionXLInpainting",
    "flux_fill.yaml": "realfill.modules.FluxFillInpainting",
    "tiny.yaml": "realfill.modules.TinyStableDiffusionInpainting",
    "tiny_sdxl.yaml": "realfill.modules.TinyStableDiffusionXLInpainting",
    "tiny_flux_fill.yaml": "realfill.modules.TinyFluxFillInpainting",
}


@pytest.mark.parametrize("name", sorted(BASE_MODEL_CONFIGS))
def test_config_prints_complete_without_loading_the_model(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(CONFIGS / name), "--print_config"])
    assert exit_info.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    base_model = config["model"]["base_model"]
    assert base_model["class_path"] == BASE_MODEL_CONFIGS[name]
    assert config["data"]["resolution"] > 0 and config["trainer"]["max_steps"] > 0
    assert "lora" in config["model"] and "rank" in config["model"]["lora"]


def test_flat_settings_of_earlier_versions_move_to_their_groups():
    config = {
        "model": {
            "compile_denoiser": True,
            "denoiser_learning_rate": 1e-3,
            "warmup_steps": 7,
            "optimization": {"warmup_steps": 9},
            "prompt": "a photo of sks",
        }
    }
    moved = migrate_flat_settings(config)
    assert set(moved) == {
        "model.compile_denoiser",
        "model.denoiser_learning_rate",
        "model.warmup_steps",
    }
    assert config["model"] == {
        "compile": {"denoiser": True},
        "optimization": {"denoiser_learning_rate": 1e-3, "warmup_steps": 9},
        "prompt": "a photo of sks",
    }
    assert migrate_flat_settings({"trainer": {}}) == []
