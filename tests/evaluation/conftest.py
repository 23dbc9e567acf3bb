"""A benchmark built from the real motorcycle stereo pair (the builder in examples/)."""

from pathlib import Path

import pytest

SHORT_SIDE = 96
"""Small scenes keep the CLI tests fast; the method's behaviour does not depend on size."""


@pytest.fixture(scope="session")
def motorcycle_benchmark(tmp_path_factory, motorcycle_builder) -> Path:
    """motorcycle_inpaint and motorcycle_outpaint, short side 96 px."""
    root = tmp_path_factory.mktemp("bench") / "benchmark"
    motorcycle_builder.build_benchmark(root, SHORT_SIDE, jpeg_quality=90)
    return root
