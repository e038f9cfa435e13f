"""The schedules the runtime iterates: :class:`Static` (fixed blocks) and :class:`Dynamic` (claim
own blocks, steal tails). See docs/schedule.md.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Iterator, Sequence

from hpcdist.errors import UserError
from hpcdist.options import SCHEDULES
from hpcdist.schedule.claiming import Claimer, LocalWords, Request, Words, initial_block, pack
from hpcdist.shards import static_blocks

DRY_PAUSE_S = 0.0005       # a dry rank samples again after this, doubling up to its claim_s

Poll = Callable[[], None]


def resolve(requested: str, ranks: int) -> str:
    """The schedule a run uses: ``static`` or ``dynamic`` (``auto``: dynamic on > 1 rank)."""
    if requested not in SCHEDULES:
        raise UserError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {requested!r}")
    if requested == "auto":
        return "dynamic" if ranks > 1 else "static"
    return requested


class Schedule(ABC):
    """Which shards this rank maps in one pass. Iterate for them (in the order to map them), then
    :meth:`close` on every rank; on an exception call :meth:`abandon` instead."""

    name: ClassVar[str]
    claims: int       # blocks this rank took from its own range
    steals: int       # ranges this rank took from another's

    @abstractmethod
    def __iter__(self) -> Iterator[int]: ...

    @abstractmethod
    def close(self, poll: Poll | None = None) -> None:
        """Collective: wait (calling ``poll`` meanwhile) until every rank has finished its shards."""

    @abstractmethod
    def abandon(self) -> None:
        """Leaving on an exception (the process is about to end): release what is local."""


class Static(Schedule):
    """Every rank maps its block of the static split; nothing moves."""

    name = "static"

    def __init__(self, todo: Sequence[int], rank: int, ranks: int, comm: Any = None) -> None:
        self.todo, self.rank, self.ranks, self.comm = todo, rank, ranks, comm
        self.claims = self.steals = 0

    def __iter__(self) -> Iterator[int]:
        mine = static_blocks(self.todo, self.rank, self.ranks)
        self.claims = 1 if len(mine) else 0
        return iter(mine)

    def close(self, poll: Poll | None = None) -> None:
        if self.comm is not None and self.ranks > 1:
            from hpcdist.comm import wait
            wait(self.comm.Ibarrier(), poll)

    def abandon(self) -> None:
        """Nothing to release."""


class Dynamic(Schedule):
    """Claim blocks from the front of this rank's range, steal tails when dry. Opening it is
    collective when it makes an MPI window (``comm`` given, no ``words``)."""

    name = "dynamic"

    def __init__(self, todo: Sequence[int], rank: int, ranks: int, comm: Any = None,
                 words: Words | None = None, poll: Poll | None = None, **tuning: Any) -> None:
        self.todo, self.rank, self.ranks, self.poll = todo, rank, ranks, poll
        self.claims = self.steals = 0
        n = len(todo)
        if words is None:
            if comm is not None:
                from hpcdist.schedule.window import WindowWords
                words = WindowWords(comm, pack(*initial_block(n, rank, ranks)))
            else:
                words = LocalWords(n, ranks)
        self.words = words
        self.claimer = Claimer(words, rank, ranks, n, **tuning)

    @property
    def atomics(self) -> int:
        return self.claimer.atomics

    def __iter__(self) -> Iterator[int]:
        claimer, todo = self.claimer, self.todo
        start = time.perf_counter()
        inside, done = 0.0, 0
        dry: Request | None = None
        while True:
            t0 = time.perf_counter()
            per_shard = (t0 - start - inside) / done if done else None
            block = claimer.next_block(per_shard)
            if block is None and not claimer.exhaustive:
                dry = dry or self.words.enter_dry()
                block = self._sample_until_all_dry(dry, per_shard)
            inside += time.perf_counter() - t0
            self.claims, self.steals = claimer.claims, claimer.steals
            if block is None:
                return
            for position in block:
                yield todo[position]
                done += 1

    def _sample_until_all_dry(self, dry: Request, per_shard: float | None) -> range | None:
        """Termination without sweeping every word (NBX): having said "dry" in a non-blocking
        barrier, keep sampling, backing off, until a steal succeeds or every rank has said it too."""
        pause, block = DRY_PAUSE_S, None
        while block is None and not dry.Test():
            if self.poll is not None:
                self.poll()
            time.sleep(pause)
            pause = min(2 * pause, self.claimer.claim_s)
            block = self.claimer.next_block(per_shard)
        return block

    def close(self, poll: Poll | None = None) -> None:
        self.words.close(poll)

    def abandon(self) -> None:
        self.words.abandon()


def open_schedule(name: str, todo: Sequence[int], rank: int, ranks: int, comm: Any = None,
                  poll: Poll | None = None) -> Schedule:
    """The schedule ``name`` (already resolved) for this rank; collective for ``dynamic``.
    ``poll`` is called while a dry rank waits for the others to run dry too."""
    if name == "dynamic":
        return Dynamic(todo, rank, ranks, comm, poll=poll)
    if name == "static":
        return Static(todo, rank, ranks, comm)
    raise ValueError(f"unknown schedule {name!r}")
