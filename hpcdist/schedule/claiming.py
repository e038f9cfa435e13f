"""The dynamic schedule's rules, with no MPI and no clock: how a range is one word, how much an
owner claims, whom a dry rank robs and how much it takes. See docs/schedule.md.

Everything here works over any :class:`Words`; :class:`LocalWords` (a lock and two lists) stands
in for the MPI window in unit tests and simulations.
"""

from __future__ import annotations

import math
import random
import threading
from typing import Callable, Protocol, Sequence

from hpcdist.shards import static_block

CLAIM_S = 0.020            # an owner claims about this much work per atomic
STEAL_MIN_GAIN_S = 0.050   # a steal must be expected to save at least this much
SURVEY_ALL = 16            # up to this many other ranks, a dry rank reads every word before choosing
SAMPLE = 8                 # beyond: this many random victims (plus both neighbours)
_BITS = 32
_MASK = (1 << _BITS) - 1
MAX_POSITIONS = 1 << 31    # positions must fit the 32-bit halves of a signed 64-bit word


def pack(front: int, back: int) -> int:
    """One window word for the unclaimed positions ``[front, back)``."""
    return (front << _BITS) | back


def unpack(word: int) -> tuple[int, int]:
    """``(front, back)`` of a word made by :func:`pack`."""
    return word >> _BITS, word & _MASK


def initial_block(n: int, rank: int, ranks: int) -> tuple[int, int]:
    """Rank's first range of positions: its block under the static split."""
    block = static_block(n, rank, ranks)
    return block.start, block.stop


def block_size(remaining: int, seconds_per_shard: float | None, claim_s: float = CLAIM_S) -> int:
    """How many positions an owner claims at once: ~``claim_s`` of work, at most half of what is left."""
    if remaining <= 0:
        return 0
    if not seconds_per_shard:
        return 1
    want = max(1, math.ceil(claim_s / seconds_per_shard))
    return min(want, max(1, remaining // 2))


def steal_split(remaining: int, victim_s: float | None, thief_s: float | None) -> tuple[int, float]:
    """How many positions to take from the back of a victim's ``remaining``, and the seconds saved.

    The take makes both finish together (speed-proportional). Unknown speeds are assumed equal to
    the other's; with both unknown the thief takes half and the gain is unknown (``inf``).
    """
    if remaining <= 0:
        return 0, 0.0
    if not victim_s and not thief_s:
        return remaining // 2, (math.inf if remaining >= 2 else 0.0)
    tv = victim_s or thief_s
    tt = thief_s or victim_s
    take = min(remaining, int(remaining * tv / (tv + tt) + 0.5))
    gain = remaining * tv - max(take * tt, (remaining - take) * tv)
    return (take, gain) if take > 0 and gain > 0 else (0, 0.0)


class Request(Protocol):
    """What :meth:`Words.enter_dry` returns (an ``MPI.Request`` has this method)."""

    def Test(self) -> bool: ...


class Words(Protocol):
    """Every rank's (range word, ns per shard), readable and changeable atomically by any rank,
    and the end of the schedule: releasing them when done or when leaving on an error."""

    def read(self, rank: int) -> tuple[int, int]: ...

    def cas(self, rank: int, compare: int, new: int) -> int: ...

    def set_speed(self, rank: int, ns_per_shard: int) -> None: ...

    def enter_dry(self) -> Request:
        """Say this rank found nothing (once); the request completes when every rank has."""

    def close(self, poll: Callable[[], None] | None = None) -> None:
        """Every rank is done with the words (wait for the others, answering ``poll``); release them."""

    def abandon(self) -> None:
        """Leaving on an exception: release what can be released without the other ranks."""


class _Flag:
    def __init__(self, test: Callable[[], bool]) -> None:
        self.Test = test


class LocalWords:
    """In-process :class:`Words` (thread-safe): for one rank without a window and for tests."""

    def __init__(self, n: int, ranks: int) -> None:
        self._lock = threading.Lock()
        self._words = [pack(*initial_block(n, r, ranks)) for r in range(ranks)]
        self._speed = [0] * ranks
        self._ranks, self._dry = ranks, 0

    def read(self, rank: int) -> tuple[int, int]:
        with self._lock:
            return self._words[rank], self._speed[rank]

    def cas(self, rank: int, compare: int, new: int) -> int:
        with self._lock:
            old = self._words[rank]
            if old == compare:
                self._words[rank] = new
            return old

    def set_speed(self, rank: int, ns_per_shard: int) -> None:
        with self._lock:
            self._speed[rank] = ns_per_shard

    def enter_dry(self) -> Request:
        with self._lock:
            self._dry += 1
        return _Flag(lambda: self._dry >= self._ranks)

    def close(self, poll: Callable[[], None] | None = None) -> None:
        """Nothing to release: the lists go with the object."""

    def abandon(self) -> None:
        """Nothing to release."""


class Claimer:
    """One rank's side of the dynamic schedule over any :class:`Words` (pure logic, no timing)."""

    def __init__(self, words: Words, rank: int, ranks: int, n: int, *, claim_s: float = CLAIM_S,
                 min_gain_s: float = STEAL_MIN_GAIN_S, survey_all: int = SURVEY_ALL,
                 sample: int = SAMPLE) -> None:
        if n >= MAX_POSITIONS:
            raise ValueError(f"{n} shards in one pass: the dynamic schedule handles < 2**31")
        self.words, self.rank, self.ranks = words, rank, ranks
        self.claim_s, self.min_gain_s, self.survey_all, self.sample = claim_s, min_gain_s, survey_all, sample
        self.mine = pack(*initial_block(n, rank, ranks))   # last known value of this rank's word
        self.claims = self.steals = self.atomics = self.races = 0
        self._rng = random.Random(rank)
        self._published = 0
        self.exhaustive = ranks - 1 <= survey_all   # else: samples, and None means "none found *now*"

    def next_block(self, seconds_per_shard: float | None = None) -> range | None:
        """The next positions for this rank to map, or None: own range empty and nothing worth
        stealing among every other rank (``exhaustive``) or among a random sample (else)."""
        if seconds_per_shard:
            ns = max(1, int(seconds_per_shard * 1e9))
            if abs(ns - self._published) > self._published // 8:     # tell thieves when it moved >12%
                self.words.set_speed(self.rank, ns)
                self._published = ns
                self.atomics += 1
        while True:
            got = self._claim_own(seconds_per_shard)
            if got is not None:
                return got
            if not self._steal(seconds_per_shard):
                return None

    def _claim_own(self, t: float | None) -> range | None:
        word = self.mine
        while True:
            front, back = unpack(word)
            if front >= back:
                self.mine = word
                return None
            k = block_size(back - front, t, self.claim_s)
            new = pack(front + k, back)
            old = self.words.cas(self.rank, word, new)
            self.atomics += 1
            if old == word:
                self.mine = new
                self.claims += 1
                return range(front, front + k)
            self.races += 1           # a thief took our tail meanwhile: retry with what is left
            word = old

    def _steal(self, t: float | None) -> bool:
        """Take part of another rank's range into our own (empty) word; False when none is worth it."""
        while True:
            best = self.best_victim(self.victims(), t)
            if best is None:
                return False
            victim, word, speed_ns = best
            while True:
                front, back = unpack(word)
                take, gain = steal_split(back - front, speed_ns / 1e9 or None, t)
                if take <= 0 or gain < self.min_gain_s:
                    break                   # changed under us and no longer worth it: look again
                old = self.words.cas(victim, word, pack(front, back - take))
                self.atomics += 1
                if old == word:
                    self._publish(back - take, back)
                    self.steals += 1
                    return True
                self.races += 1
                word = old

    def _publish(self, front: int, back: int) -> None:
        """Our word is empty and only we refill it, so this CAS cannot fail."""
        new = pack(front, back)
        old = self.words.cas(self.rank, self.mine, new)
        self.atomics += 1
        if old != self.mine:
            raise RuntimeError(f"rank {self.rank}: own word changed while empty ({unpack(old)})")
        self.mine = new

    def victims(self) -> list[int]:
        """The ranks to read, in ring order from this one: every other rank (``exhaustive``), else
        both ring neighbours and ``sample`` random others."""
        others = [(self.rank + d) % self.ranks for d in range(1, self.ranks)]   # ring order: neighbours first
        if self.exhaustive:
            return others
        picked = {others[0], others[-1], *self._rng.sample(others, min(self.sample, len(others)))}
        return [r for r in others if r in picked]

    def best_victim(self, victims: Sequence[int], t: float | None) -> tuple[int, int, int] | None:
        """``(rank, word, ns per shard)`` of the victim whose steal saves the most, if it saves at
        least ``min_gain_s``; ties go to the first in ``victims`` (the nearest in the ring)."""
        best, best_gain = None, self.min_gain_s
        for v in victims:
            word, speed_ns = self.words.read(v)
            self.atomics += 1
            front, back = unpack(word)
            take, gain = steal_split(back - front, speed_ns / 1e9 or None, t)
            if take > 0 and (gain > best_gain or (best is None and gain >= best_gain)):
                best, best_gain = (v, word, speed_ns), gain
        return best
