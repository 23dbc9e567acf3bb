"""RealFill: reference-driven authentic image completion on PyTorch Lightning."""

from realfill.environment import check_torchvision
from realfill.errors import RealFillError
from realfill.notices import drop_irrelevant_notices

check_torchvision()
drop_irrelevant_notices()

__all__ = ["RealFillError", "drop_irrelevant_notices"]
