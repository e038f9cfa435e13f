"""Seconds a run spent writing checkpoints: the ``checkpoint`` phase of ``hpcdist bench``.

The runtime is the one that knows; once it reports ``checkpoint_s`` and ``checkpoints`` among its
attributes, :meth:`Writes.totals` takes them from there. Until then (INTERIM: delete ``_wrapped``
with this paragraph) the writes are timed by wrapping ``hpcdist.checkpoint.save`` for the length of
the run. Such a wrapper sees only the calls that look ``save`` up on the module, so it refuses to
start when a loaded hpcdist module holds ``save`` under its own name: a silent 0 s is not a number.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping


@dataclass
class Writes:
    """Checkpoint writes seen during one run (rank 0 writes them)."""

    seconds: list[float] = field(default_factory=list)

    def totals(self, attrs: Mapping[str, Any]) -> tuple[float, int]:
        """(seconds, count) of the run's checkpoint writes: the runtime's own figures if it gives them."""
        if "checkpoint_s" in attrs:
            return float(attrs["checkpoint_s"]), int(attrs.get("checkpoints", len(self.seconds)))
        return float(sum(self.seconds)), len(self.seconds)


@contextlib.contextmanager
def timed_writes() -> Iterator[Writes]:
    """The checkpoint writes while the block runs."""
    with _wrapped() as writes:
        yield writes


@contextlib.contextmanager
def _wrapped() -> Iterator[Writes]:
    from hpcdist import checkpoint

    original = checkpoint.save
    by_name = [name for name, mod in list(sys.modules.items())
               if name.startswith("hpcdist.") and not name.startswith("hpcdist.checkpoint")
               and getattr(mod, "save", None) is original]
    if by_name:
        raise RuntimeError(f"cannot time checkpoint writes: {', '.join(by_name)} imports checkpoint.save by name; "
                           "let the runtime report checkpoint_s instead (hpcdist/bench/checkpoint_timer.py)")
    writes = Writes()

    def save(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            writes.seconds.append(time.perf_counter() - t)

    checkpoint.save = save
    try:
        yield writes
    finally:
        checkpoint.save = original
