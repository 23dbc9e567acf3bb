"""The diffusion methods of a benchmark, run through the project's own commands: RealFill
(`realfill.fit`, then `realfill.sample`) and the prompt-only baseline (the base model with no
adaptation: a fit of zero steps leaves the LoRA at its zero initialisation, then `sample` with
a hand-written prompt and classifier-free guidance)."""

from collections.abc import Sequence
from pathlib import Path

import yaml

from realfill.fit import main as fit_main
from realfill.sample import SELECTION_KEYS
from realfill.sample import main as sample_main

SCALAR = (bool, int, float, str, type(None))
"""Setting types passed on as `--key=value` flags."""
SKIPPED_KEYS = frozenset({"dirname", "matcher"})
"""CompleteTarget settings not passed to `sample` (the output folder is the benchmark's; a
matcher given as a class is left to sample's default)."""
FIT_ONLY_CALLBACKS = [{"class_path": "realfill.callbacks.SaveLoRA"}]
"""Callbacks of a benchmark fit: only the LoRA export (sampling is its own stage)."""
PROMPT_FILE = "prompt.txt"
"""A scene's hand-written description, for the prompt-only baseline."""
DEFAULT_PROMPT = "a photo"
"""Prompt of a scene without prompt.txt."""
PROMPT_GUIDANCE_SCALE = 7.5
"""Classifier-free guidance of the prompt-only baseline (stock SD inpainting's default)."""


def sampling_settings(configs: Sequence[Path], overrides: dict) -> dict:
    """CompleteTarget's scalar settings found in the configs' trainer callbacks (later configs
    win), then the non-None `overrides`."""
    found: dict = {}
    for path in configs:
        callbacks = ((yaml.safe_load(Path(path).read_text()) or {}).get("trainer") or {}).get(
            "callbacks"
        ) or []
        for callback in callbacks:
            if isinstance(callback, dict) and str(callback.get("class_path", "")).endswith(
                "CompleteTarget"
            ):
                found |= callback.get("init_args") or {}
    settings = {
        key: value
        for key, value in found.items()
        if key in SELECTION_KEYS
        and key not in SKIPPED_KEYS
        and isinstance(value, SCALAR)
        and "${" not in str(value)
    }
    return settings | {key: value for key, value in overrides.items() if value is not None}


def flags(settings: dict) -> list[str]:
    """Settings as `--key=value` command-line flags (None as jsonargparse's `null`)."""
    return [f"--{key}={'null' if value is None else value}" for key, value in settings.items()]


def fit_then_sample(
    configs: Sequence[Path],
    scene_dir: Path,
    run_dir: Path,
    out: Path,
    fit_args: Sequence[str],
    sample_args: Sequence[str],
) -> None:
    """Fit the LoRA on the scene into `run_dir`, then sample, rank and select into `out`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    preset = run_dir / "benchmark-preset.yaml"
    preset.write_text(yaml.safe_dump({"trainer": {"callbacks": FIT_ONLY_CALLBACKS}}))
    config_flags = [flag for path in configs for flag in ("--config", str(path))]
    fit_main(
        [
            *config_flags,
            "--config",
            str(preset),
            f"--data.scene_dir={scene_dir}",
            f"--trainer.default_root_dir={run_dir}",
            *fit_args,
        ]
    )
    sample_main(["--config", str(run_dir / "config.yaml"), f"--out={out}", *sample_args])


def scene_prompt(scene_dir: Path) -> str:
    """The scene's prompt.txt, or a generic prompt."""
    path = Path(scene_dir) / PROMPT_FILE
    return path.read_text().strip() if path.is_file() else DEFAULT_PROMPT


def run_realfill(
    configs: Sequence[Path],
    scene_dir: Path,
    root: Path,
    fit_args: Sequence[str],
    sampling: dict,
) -> Path:
    """RealFill on one scene: completions in `<root>/completions/`, the run in `<root>/run/`."""
    out = root / "completions"
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
    out = root / "completions"
    prompt = f"--model.prompt={scene_prompt(scene_dir)}"
    fit_then_sample(
        configs,
        scene_dir,
        root / "run",
        out,
        [*fit_args, "--trainer.max_steps=0", prompt],
        [*flags(sampling | {"guidance_scale": guidance_scale}), prompt],
    )
    return out
