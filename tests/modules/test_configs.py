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


COMPOSED_FORMS = {
    "realfill.yaml": ["base.yaml", "model/sd2.yaml"],
    "sd15.yaml": ["base.yaml", "model/sd15.yaml"],
    "sdxl.yaml": ["base.yaml", "model/sdxl.yaml"],
    "flux_fill.yaml": ["base.yaml", "model/flux_fill.yaml"],
    "small.yaml": ["base.yaml", "model/small.yaml"],
    "tiny.yaml": ["base.yaml", "experiment/tiny.yaml", "model/tiny_sd2.yaml"],
    "tiny_sdxl.yaml": ["base.yaml", "experiment/tiny.yaml", "model/tiny_sdxl.yaml"],
    "tiny_flux_fill.yaml": ["base.yaml", "experiment/tiny.yaml", "model/tiny_flux_fill.yaml"],
}
"""Each config name users type, and the files it stacks (docs/configuration.md's composed form)."""


def printed_config(args: list[str], capsys) -> str:
    """What `python -m realfill.fit ARGS --print_config` prints."""
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return capsys.readouterr().out


def test_every_config_name_is_composed():
    assert sorted(COMPOSED_FORMS) == sorted(BASE_MODEL_CONFIGS)


@pytest.mark.parametrize("name", sorted(COMPOSED_FORMS))
def test_config_name_resolves_as_its_composed_form(name, capsys):
    """`--config configs/X.yaml` is exactly its files given to `--config` one by one."""
    stacked = [arg for part in COMPOSED_FORMS[name] for arg in ("--config", str(CONFIGS / part))]
    single = printed_config([f"--config={CONFIGS / name}"], capsys)
    assert single == printed_config(stacked, capsys)


def test_composed_config_stacks_with_presets_after_it(capsys):
    preset = ["--config", str(CONFIGS / "memory" / "24gb.yaml")]
    single = printed_config(["--config", str(CONFIGS / "realfill.yaml"), *preset], capsys)
    config = yaml.safe_load(single)
    assert config["model"]["gradient_checkpointing"] is True
    assert config["model"]["base_model"]["class_path"].endswith("StableDiffusionInpainting")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ({"config": ["base.yaml"], "trainer": {"max_steps": 1}}, "sets nothing else"),
        ({"config": ["missing.yaml"]}, "lists missing.yaml, which is not a file"),
        ({"config": ["composed.yaml"]}, "include it again"),
        ({"config": [{"a": 1}]}, "must be a config file or a list of them"),
    ],
)
def test_bad_composed_config_is_one_line(content, reason, tmp_path, capsys):
    (tmp_path / "base.yaml").write_text((CONFIGS / "base.yaml").read_text())
    composed = tmp_path / "composed.yaml"
    composed.write_text(yaml.safe_dump(content))
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(composed)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("realfill: error:") and reason in error and "\n" not in error
