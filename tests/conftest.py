"""Shared fixtures: a tiny base model built in code and small scenes on disk. Offline always."""

import importlib.util
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_WANDB_HOME = tempfile.mkdtemp(prefix="realfill-tests-wandb-")
for _name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):  # no writes to ~
    os.environ.setdefault(_name, os.path.join(_WANDB_HOME, _name.lower()))

from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "tiny.yaml"
EXAMPLE_SCENE = REPO / "examples" / "motorcycle"
SHARED_SCENES = REPO.parent / "shared" / "scenes"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked `gpu` where there is no CUDA device."""
    if torch.cuda.is_available():
        return
    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(no_gpu)


@pytest.fixture(autouse=True)
def forget_compiled_code():
    """Drop torch.compile's caches after each test. They are per code object, whatever the
    module instance: left alone, the tests' compilations of the same diffusers classes add up
    to torch's recompile limit (past which it runs eagerly, silently), and a test that runs an
    earlier test's code at other shapes gets dynamic-shape graphs (a 3x slower compile)."""
    yield
    torch._dynamo.reset()


def textured_image(width: int, height: int, seed: int) -> Image.Image:
    """A smooth random colour field: real structure for a VAE, tiny to store."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)


def write_scene(root: Path, size: tuple[int, int] = (80, 64), references: int = 2) -> Path:
    """A valid scene folder: references, a target with a hole painted white, and its mask."""
    (root / "ref").mkdir(parents=True)
    (root / "target").mkdir()
    for i in range(references):
        textured_image(*size, seed=10 + i).save(root / "ref" / f"ref{i}.jpg", quality=95)
    target = textured_image(*size, seed=1)
    mask = Image.new("L", size, 0)
    mask.paste(255, (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    target.paste((255, 255, 255), mask=mask)
    target.save(root / "target" / "target.png")
    mask.save(root / "target" / "mask.png")
    return root


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` in the repo root, offline, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def make_textured_image():
    """`textured_image`: a smooth random colour field of a size and seed."""
    return textured_image


@pytest.fixture
def make_scene():
    """`write_scene`: a valid scene folder at a path."""
    return write_scene


@pytest.fixture(scope="session")
def motorcycle_builder():
    """examples/make_motorcycle.py as a module: scenes built from the real stereo pair."""
    spec = importlib.util.spec_from_file_location(
        "make_motorcycle", REPO / "examples" / "make_motorcycle.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def run_command():
    """`run_module`: a realfill command in its own process (several processes for DDP)."""
    return run_module


@pytest.fixture
def scene_dir(tmp_path: Path) -> Path:
    return write_scene(tmp_path / "scene")


@pytest.fixture
def tiny_base():
    from realfill.modules import TinyStableDiffusionInpainting

    return TinyStableDiffusionInpainting(seed=0)


@pytest.fixture
def fit_tiny(tmp_path: Path):
    """Runs `realfill.fit` in-process on configs/tiny.yaml with presets (dicts) stacked after
    it, in order, then `extra` arguments; returns the run dir."""
    from realfill.fit import main

    def fit(run_name: str, *presets: dict, extra: tuple[str, ...] = ()) -> Path:
        run_dir = tmp_path / run_name
        configs = ["--config", str(TINY_CONFIG)]
        for i, preset in enumerate(presets):
            path = tmp_path / f"{run_name}-preset{i}.yaml"
            path.write_text(yaml.safe_dump(preset))
            configs += ["--config", str(path)]
        main([*configs, f"--trainer.default_root_dir={run_dir}", *extra])
        return run_dir

    return fit


LOCK_HOLDER = (
    "import sys, time; from realfill.io import output_lock;"
    "held = output_lock(sys.argv[1]); held.__enter__(); print('locked', flush=True); time.sleep(60)"
)
"""A process that holds an output's lock (`realfill.io.output_lock`) until killed."""


@contextmanager
def locked_by_another_process(out: Path) -> Iterator[None]:
    """Hold `out`'s output lock in another process inside the block: another command is
    writing it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def lock_held_elsewhere():
    """`locked_by_another_process`: another command writing an output, inside the block."""
    return locked_by_another_process
