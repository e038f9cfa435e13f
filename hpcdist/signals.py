"""SIGTERM, SIGINT and SIGUSR1 become a flag that the ranks check at safe points.

The handler only records the first signal; a second one (say, Slurm's SIGTERM after USR1) while
the checkpoint is being written changes nothing, so it cannot corrupt the checkpoint.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class StopFlag:
    def __init__(self) -> None:
        self.name: str | None = None

    @property
    def is_set(self) -> bool:
        return self.name is not None

    def _handle(self, signum: int, frame: object) -> None:
        if self.name is None:
            self.name = signal.Signals(signum).name


@contextmanager
def stop_on_signals(enabled: bool) -> Iterator[StopFlag]:
    """Install the handlers for the duration of a run (only when there is a checkpoint to write)."""
    flag = StopFlag()
    if not enabled:
        yield flag
        return
    previous = {s: signal.signal(s, flag._handle) for s in STOP_SIGNALS}
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
