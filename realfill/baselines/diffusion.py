"""The diffusion methods of a benchmark, run through the project's own commands: RealFill
(`realfill.fit`, then `realfill.sample`) and the prompt-only baseline (the base model with no
adaptation: a fit of zero steps leaves the LoRA at its zero initialisation, then `sample` with
a hand-written prompt and classifier-free guidance)."""

import sys
from collections.abc import Sequence
from pathlib import Path
from unittest.mock import patch

import yaml

from realfill import layout
from realfill.errors import SceneError
from realfill.fit import main as fit_main
from realfill.io import read_text, write_text
from realfill.sample import main as sample_main

FIT_ONLY_CALLBACKS = [{"class_path": "realfill.callbacks.SaveLoRA"}]
"""Callbacks of a benchmark fit: only the LoRA export (sampling is its own stage)."""
PROMPT_FILE = "prompt.txt"
"""A scene's hand-written description, for the prompt-only baseline."""
DEFAULT_PROMPT = "a photo"
"""Prompt of a scene without prompt.txt."""
PROMPT_GUIDANCE_SCALE = 7.5
"""Classifier-free guidance of the prompt-only baseline (stock SD inpainting's default)."""


def flags(settings: dict) -> list[str]:
    """The non-None settings as `--key=value` command-line flags."""
    return [f"--{key}={value}" for key, value in settings.items() if value is not None]


def fit_then_sample(
    configs: Sequence[Path],
    scene_dir: Path,
    run_dir: Path,
    out: Path,
    fit_args: Sequence[str],
    sample_args: Sequence[str],
) -> None:
    """Fit the LoRA on the scene into `run_dir` (the configs' callbacks replaced by the LoRA
    export alone), then sample, rank and select into `out` with the configs as given: the
    selection settings are their `CompleteTarget`'s (matcher included), then `sample_args`."""
    preset = run_dir / "benchmark-preset.yaml"
    write_text(yaml.safe_dump({"trainer": {"callbacks": FIT_ONLY_CALLBACKS}}), preset)
    config_flags = [flag for path in configs for flag in ("--config", str(path))]
    run_flags = [
        f"--data.scene_dir={scene_dir}",
        f"--trainer.default_root_dir={run_dir}",
        *fit_args,
    ]
    with patch.object(sys, "argv", sys.argv[:1]):  # the commands read only the args given
        fit_main([*config_flags, "--config", str(preset), *run_flags])
        sample_main([*config_flags, *run_flags, f"--out={out}", *sample_args])


def scene_prompt(scene_dir: Path) -> str:
    """The scene's prompt.txt, or a generic prompt; `SceneError` naming the file if it is not
    UTF-8 text or cannot be read."""
    path = Path(scene_dir) / PROMPT_FILE
    return read_text(path, SceneError).strip() if path.is_file() else DEFAULT_PROMPT


def run_realfill(
    configs: Sequence[Path],
    scene_dir: Path,
    root: Path,
    fit_args: Sequence[str],
    sampling: dict,
) -> Path:
    """RealFill on one scene: completions in `<root>/completions/`, the run in `<root>/run/`."""
    out = root / layout.COMPLETIONS_DIRNAME
    fit_then_sample(configs, scene_dir, root / "run", out, fit_args, flags(sampling))
    return out


def run_prompt_only(
    configs: Sequence[Path],
    scene_dir: Path,
    root: Path,
    fit_args: Sequence[str],
    sampling: dict,
    guidance_scale: float = PROMPT_GUIDANCE_SCALE,
) -> Path:
    """The base model, prompted with the scene's description, no fine-tuning."""
    out = root / layout.COMPLETIONS_DIRNAME
    prompt = f"--model.prompt={scene_prompt(scene_dir)}"
    fit_then_sample(
        configs,
        scene_dir,
        root / "run",
        out,
        [*fit_args, "--trainer.max_steps=0", prompt],
        flags(sampling | {"guidance_scale": guidance_scale}),  # the prompt is a fit flag too
    )
    return out
