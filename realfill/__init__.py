"""RealFill: reference-driven authentic image completion on PyTorch Lightning."""

from realfill.errors import RealFillError

__all__ = ["RealFillError"]
