"""Checks of the installed packages that would otherwise fail deep inside another library."""

import importlib.util
from importlib.metadata import PackageNotFoundError, version

CPU_TORCHVISION = "pip install torchvision==0.28.0 --index-url https://download.pytorch.org/whl/cpu"
"""The torchvision made for the CPU-only torch 2.13 (PyPI's is built for its CUDA torch)."""


def check_torchvision() -> None:
    """Raise an ImportError that says what to do when torchvision is installed but cannot load
    beside this torch: PyPI's torchvision beside a CPU-only torch fails with "operator
    torchvision::nms does not exist", inside whichever library imports it first (Lightning,
    transformers), so that no realfill command could start."""
    if importlib.util.find_spec("torchvision") is None:
        return
    try:
        import torchvision  # noqa: F401
    except (RuntimeError, OSError) as error:
        try:
            installed = version("torchvision")
        except PackageNotFoundError:
            installed = "?"
        import torch

        raise ImportError(
            f"torchvision {installed} is installed but cannot load beside torch "
            f"{torch.__version__} ({error}): it was built for another torch. Install the one "
            f"made for this torch (for a CPU-only torch: {CPU_TORCHVISION}), or uninstall it "
            "(only the LPIPS and DreamSim metrics need it)"
        ) from None
