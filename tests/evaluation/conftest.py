"""A benchmark built from the real motorcycle stereo pair (the builder in examples/)."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHORT_SIDE = 96
"""Small scenes keep the CLI tests fast; the method's behaviour does not depend on size."""


def load_builder():
    """examples/make_motorcycle.py as a module."""
    spec = importlib.util.spec_from_file_location(
        "make_motorcycle", REPO / "examples" / "make_motorcycle.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def motorcycle_benchmark(tmp_path_factory) -> Path:
    """motorcycle_inpaint and motorcycle_outpaint, short side 96 px."""
    root = tmp_path_factory.mktemp("bench") / "benchmark"
    load_builder().build_benchmark(root, SHORT_SIDE, jpeg_quality=90)
    return root
