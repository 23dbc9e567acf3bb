"""How a callback, or the Python API, finds what another callback made: the records it keeps
(`CompleteTarget.selection`, `SaveLoRA.saved_to`, `SaveRunConfig.resolved`), in memory."""

from collections.abc import Sequence
from typing import TypeVar

Found = TypeVar("Found")
"""The kind of callback looked for."""


def first_callback(callbacks: Sequence[object], kind: type[Found]) -> Found | None:
    """The first callback of a kind among `callbacks` (e.g. `trainer.callbacks`), or None."""
    return next((callback for callback in callbacks if isinstance(callback, kind)), None)
