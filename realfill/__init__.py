"""RealFill: reference-driven authentic image completion on PyTorch Lightning."""

from realfill.errors import RealFillError
from realfill.notices import drop_irrelevant_notices

drop_irrelevant_notices()

__all__ = ["RealFillError", "drop_irrelevant_notices"]
