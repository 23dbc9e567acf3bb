"""The diffusion methods of a benchmark, run through the project's Python API: RealFill
(`fit`, then `sample`) and the prompt-only baseline (the base model with no adaptation: a fit
of zero steps leaves the LoRA at its zero initialisation, then `sample` with a hand-written
prompt and classifier-free guidance)."""

from collections.abc import Sequence
from pathlib import Path

import yaml

from realfill import layout
from realfill.api import as_flags, fit, sample
from realfill.errors import SceneError
from realfill.io import read_text, write_text
from realfill.selection import Selection

FIT_ONLY_CALLBACKS = [{"class_path": "realfill.callbacks.SaveLoRA"}]
"""Callbacks of a benchmark fit: only the LoRA export (sampling is its own stage)."""
PROMPT_FILE = "prompt.txt"
"""A scene's hand-written description, for the prompt-only baseline."""
DEFAULT_PROMPT = "a photo"
"""Prompt of a scene without prompt.txt."""
PROMPT_GUIDANCE_SCALE = 7.5
"""Classifier-free guidance of the prompt-only baseline (stock SD inpainting's default)."""


def fit_then_sample(
    configs: Sequence[Path],
    scene_dir: Path,
    run_dir: Path,
    out: Path,
    fit_args: Sequence[str],
    sampling: dict,
) -> Selection | None:
    """Fit the LoRA on the scene into `run_dir` (the configs' callbacks replaced by the LoRA
    export alone), then sample, rank and select into `out` with the configs as given: the
    selection settings are their `CompleteTarget`'s (matcher included), then `sampling`'s."""
    preset = run_dir / "benchmark-preset.yaml"
    fit_only = {"trainer": {"callbacks": FIT_ONLY_CALLBACKS}, "selection": None}
    write_text(yaml.safe_dump(fit_only), preset)
    run_flags = [
        f"--data.scene_dir={scene_dir}",
        f"--trainer.default_root_dir={run_dir}",
        *fit_args,
    ]
    fit([*configs, preset], overrides=run_flags)
    return sample(configs, out=out, overrides=[*run_flags, *as_flags(sampling)])


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
    fit_then_sample(configs, scene_dir, root / "run", out, fit_args, sampling)
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
        sampling | {"guidance_scale": guidance_scale},  # the prompt is a fit flag too
    )
    return out
