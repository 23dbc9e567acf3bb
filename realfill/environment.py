"""Checks of the installed packages that would otherwise fail deep inside another library."""

import importlib.machinery
import importlib.util
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

TORCHVISION_SHAPE_ONLY_OPERATORS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
"""The torchvision operators whose shape functions torchvision registers at import even when
its C++ library did not load, with the schemas that library declares for them."""


def torchvision_operators_load(package_dir: Path) -> bool:
    """Whether torchvision's C++ operator library (`_C`) in `package_dir` loads beside this
    torch; PyPI's build needs the CUDA torch's libraries, which a CPU-only torch lacks."""
    import torch

    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        library = package_dir / f"_C{suffix}"
        if library.exists():
            try:
                torch.ops.load_library(str(library))
            except (OSError, RuntimeError):
                return False
            return True
    return False


def let_torchvision_import() -> None:
    """Let a torchvision whose C++ operators cannot load (PyPI's, beside the CPU-only torch)
    import all the same. Its import otherwise fails on "operator torchvision::nms does not
    exist", inside whichever library imports it first (Lightning, transformers), so that no
    command could start. Declaring the two operators it registers shapes for lets it import:
    its models and transforms, all that LPIPS and DreamSim use, are plain PyTorch, and its C++
    operators (nms, roi_align, image decoding) still raise their own "Couldn't load custom C++
    ops" when called."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or "torchvision" in sys.modules or not spec.submodule_search_locations:
        return
    if torchvision_operators_load(Path(spec.submodule_search_locations[0])):
        return
    import torch

    for name, schema in TORCHVISION_SHAPE_ONLY_OPERATORS.items():
        torch.library.define(f"torchvision::{name}", schema)


def check_torchvision() -> None:
    """Make an installed torchvision importable (`let_torchvision_import`), or raise an
    ImportError naming it and what to do when it still cannot load beside this torch."""
    if importlib.util.find_spec("torchvision") is None:
        return
    let_torchvision_import()
    try:
        import torchvision  # noqa: F401
    except (RuntimeError, OSError, ImportError) as error:
        try:
            installed = version("torchvision")
        except PackageNotFoundError:
            installed = "?"
        import torch

        raise ImportError(
            f"torchvision {installed} is installed but cannot load beside torch "
            f"{torch.__version__} ({error}): install the release made for this torch "
            '(pip install -e ".[eval]" pins it), or uninstall it (only the LPIPS and DreamSim '
            "metrics need it)"
        ) from None
