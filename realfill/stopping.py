"""Stop requests honoured inside long loops (denoising steps, ranking), not only between them.

A SIGTERM that Lightning's handler only records must stop a fit or `realfill.sample` within
moments. The loops call `check_stop` at each step; whoever knows how to tell that a stop was
asked for registers a check for the duration with `stop_checked`.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_CHECKS: list[Callable[[], None]] = []
"""Called at every step of a checked loop (see `stop_checked`): each raises to stop."""


@contextmanager
def stop_checked(check: Callable[[], None]) -> Iterator[None]:
    """Call `check` at every step of the checked loops inside the block (each denoising step,
    each candidate ranked): a stop request is honoured within a step, not after a batch of
    hundreds of steps."""
    STOP_CHECKS.append(check)
    try:
        yield
    finally:
        STOP_CHECKS.remove(check)


def check_stop() -> None:
    """Run every registered stop check (see `stop_checked`)."""
    for check in list(STOP_CHECKS):
        check()
