"""Who maps which shard: a static split, or dynamic claiming with work stealing (no master rank).

Both schedules hand out *positions* ``0..n-1`` of the shards still to do in a pass (all of them, or
after a resume the ones the checkpoint lacks) and both start from the same contiguous blocks:
rank ``r`` of ``P`` owns positions ``[r*n//P, (r+1)*n//P)`` (:func:`hpcdist.shards.static_blocks`),
so each rank reads a contiguous stretch of the file first. Which rank maps a shard never changes
the result: :meth:`hpcdist.tree.Fold.add_leaf` folds leaves arriving in any order into the same
fixed-order tree, so the bits are those of the static schedule and of any rank count.

**static** -- every rank maps its block, nothing moves. A run is as slow as its slowest rank.

**dynamic** -- MPI-3 one-sided atomics; every rank computes, nobody serves, no spawn (works under
``mpiexec`` and ``srun`` alike). Each rank exposes two 64-bit integers in a window
(``MPI.Win.Allocate``): the unclaimed part ``[front, back)`` of its range, packed as
``front << 32 | back`` in one word, and its measured nanoseconds per shard.

- *Claim*: the owner takes a block from the front with one ``Compare_and_swap`` on its own word,
  then maps the block shard by shard (``coord.poll()`` in between, as always).
- *Steal*: a rank that runs dry reads the other ranks' words (``Get_accumulate`` with ``NO_OP``,
  atomic), picks the victim whose steal saves the most time and takes the *back* of its range with
  one ``Compare_and_swap``: the victim keeps the rows right after the ones it is reading, the thief
  gets a contiguous tail. The take is the speed-proportional share of what remains
  (``remaining * t_victim / (t_victim + t_thief)``: half between equals, 4/5 from a rank 4x slower),
  so both finish together instead of a slow thief dragging a fast victim's work. The thief
  publishes the stolen range in its own word, so it can in turn be stolen from.
- *Exactly once*: every change of a word is a CAS comparing the whole (front, back) pair, so of a
  claim and a steal racing on one word the second fails, gets the new value back and retries. A
  word's range only shrinks, or (when its owner was dry) is replaced by a stolen range disjoint
  from everything it held before, so a stale value never compares equal (no ABA). Only CAS changes
  a word and only ``NO_OP`` reads it (the speed word: ``REPLACE`` and ``NO_OP``), as MPI's default
  ``accumulate_ops=same_op_no_op`` requires for concurrent atomics on one location.

**Blocks are sized so atomics stay rare.** A claim is one atomic; an owner claims about
``CLAIM_S`` (20 ms) of work at a time, measured by its own seconds per shard (the first claim is one
shard, to measure), and never more than half of what it has left, so the tail stays stealable. With
4 MB shards (~1 ms) that is ~20 shards per atomic; with tiny shards (``--shard-rows 100``, a few
microseconds each) an atomic per shard would cost as much as the work, a block of thousands does
not. Claims touch only the claimant's own word, so however many ranks there are, an owner's
claims never contend with anyone's: there is no shared counter. Imbalance left at the end is at
most about one block per rank.

**Steals must pay.** A steal happens only if it is expected to save at least ``STEAL_MIN_GAIN_S``
(50 ms): less is within the noise of process scheduling on a shared node, and every steal costs
locality (a jump in the file, one more tree node to reduce and checkpoint). So on a balanced run
dynamic maps what static maps, and a pass of tiny shards is never shuffled by scheduling jitter.
A victim whose speed is not known yet (no shard finished) is assumed as fast as the thief.

**Victims and termination**: up to ``SURVEY_ALL`` (16) ranks, a dry rank reads every word and
stops when none is worth stealing from. Beyond, it reads ``SAMPLE`` (8) random words and its two
ring neighbours (on its node, with block placement), and when that sample is empty it enters a
non-blocking barrier (``Ibarrier``, the NBX pattern) and keeps sampling, backing off from 0.5 ms
to ``CLAIM_S``, until every rank has entered: O(log P) to detect the end instead of O(P) reads
per rank. A rank leaves only with its own word empty, and only it refills that word, so every
position is claimed. A shard claimed but not yet mapped is its claimant's: never lost, never taken
twice.

**Progress**: under MPICH's shared-memory windows an atomic is done by the origin (measured: ~3 us
to a rank that sleeps without calling MPI). Where atomics go through the target's progress engine
(across nodes without hardware atomics), every rank calls MPI between shards (``coord.poll()``'s
``Iprobe``) and each atomic is completed with ``Win.Flush(target)``, so a steal waits at most one
of the victim's shards; ``MPIR_CVAR_ASYNC_PROGRESS=1`` removes even that. Ranks that finished wait
for the others in ``Ibarrier`` completed by ``hpcdist.comm.wait(req, poll)`` (answering the
checkpoint coordinator), which also makes progress for late thieves, and only then free the
window collectively (``Win.Free``): nobody blocks in a collective while another rank needs it.

**auto** (the default): ``dynamic`` on more than one rank, ``static`` on one. Dynamic moves work
only when the per-shard times it measures at run time differ enough for a steal to save
``STEAL_MIN_GAIN_S`` (a slow or shared node, oversubscribed ranks, shards of uneven cost), and
otherwise costs one window per pass, one local atomic per ~20 ms block and one non-blocking
barrier: measured within noise of static on a balanced run (benchmarks/results/dynamic.json).
"""

from __future__ import annotations

import math
import random
import threading
import time
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np

from hpcdist.errors import UserError
from hpcdist.shards import static_blocks

SCHEDULES = ("auto", "static", "dynamic")
CLAIM_S = 0.020            # an owner claims about this much work per atomic
STEAL_MIN_GAIN_S = 0.050   # a steal must be expected to save at least this much
SURVEY_ALL = 16            # up to this many ranks, a dry rank reads every word before choosing
SAMPLE = 8                 # beyond: this many random victims (plus both neighbours)
DRY_PAUSE_S = 0.0005       # a dry rank samples again after this, doubling up to CLAIM_S
_BITS = 32
_MASK = (1 << _BITS) - 1
MAX_POSITIONS = 1 << 31    # positions must fit the 32-bit halves of a signed 64-bit word

Poll = Callable[[], None]


def resolve(requested: str, ranks: int) -> str:
    """The schedule a run uses: ``static`` or ``dynamic`` (``auto``: dynamic on > 1 rank)."""
    if requested not in SCHEDULES:
        raise UserError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {requested!r}")
    if requested == "auto":
        return "dynamic" if ranks > 1 else "static"
    return requested


def pack(front: int, back: int) -> int:
    """One window word for the unclaimed positions ``[front, back)``."""
    return (front << _BITS) | back


def unpack(word: int) -> tuple[int, int]:
    return word >> _BITS, word & _MASK


def initial_block(n: int, rank: int, ranks: int) -> tuple[int, int]:
    """Rank's first range of positions: the same contiguous block as the static schedule."""
    return rank * n // ranks, (rank + 1) * n // ranks


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


class Words(Protocol):
    """Every rank's (range word, ns per shard), readable and changeable atomically by any rank."""

    def read(self, rank: int) -> tuple[int, int]: ...

    def cas(self, rank: int, compare: int, new: int) -> int: ...

    def set_speed(self, rank: int, ns_per_shard: int) -> None: ...

    def enter_dry(self) -> "Request":
        """Say this rank found nothing (once); the request completes when every rank has."""


class Request(Protocol):
    def Test(self) -> bool: ...


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
            best = self._best_victim(self._victims(self.exhaustive), t)
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

    def _victims(self, full: bool) -> list[int]:
        others = [(self.rank + d) % self.ranks for d in range(1, self.ranks)]   # ring order: neighbours first
        if full:
            return others
        picked = {others[0], others[-1], *self._rng.sample(others, min(self.sample, len(others)))}
        return [r for r in others if r in picked]

    def _best_victim(self, victims: Sequence[int], t: float | None) -> tuple[int, int, int] | None:
        best, best_gain = None, self.min_gain_s
        for v in victims:
            word, speed_ns = self.words.read(v)
            self.atomics += 1
            front, back = unpack(word)
            take, gain = steal_split(back - front, speed_ns / 1e9 or None, t)
            if take > 0 and (gain > best_gain or (best is None and gain >= best_gain)):
                best, best_gain = (v, word, speed_ns), gain
        return best


class _WindowWords:
    """:class:`Words` in an MPI-3 window: two int64 per rank, passive target, every op flushed."""

    def __init__(self, comm, first_word: int) -> None:
        from mpi4py import MPI

        self.MPI, self.comm = MPI, comm
        info = MPI.Info.Create()
        info.Set("accumulate_ordering", "none")   # each op is flushed on its own; no ordering needed
        info.Set("same_size", "true")
        info.Set("same_disp_unit", "true")
        self.win = MPI.Win.Allocate(16, 8, info, comm)   # collective
        info.Free()
        self.win.Lock_all(MPI.MODE_NOCHECK)
        self._locked = True
        mem = np.frombuffer(self.win.tomemory(), dtype=np.int64)
        mem[0], mem[1] = first_word, 0
        self.win.Sync()
        comm.Barrier()                  # nobody reads a word before its owner wrote it
        self.win.Sync()
        self._t = MPI.INT64_T
        self._two = np.zeros(2, np.int64)
        self._res2 = np.zeros(2, np.int64)
        self._org = np.zeros(1, np.int64)
        self._cmp = np.zeros(1, np.int64)
        self._res = np.zeros(1, np.int64)

    def read(self, rank: int) -> tuple[int, int]:
        self.win.Get_accumulate([self._two, self._t], [self._res2, self._t], rank, (0, 2, self._t),
                                self.MPI.NO_OP)
        self.win.Flush(rank)
        return int(self._res2[0]), int(self._res2[1])

    def cas(self, rank: int, compare: int, new: int) -> int:
        self._org[0], self._cmp[0] = new, compare
        self.win.Compare_and_swap([self._org, self._t], [self._cmp, self._t], [self._res, self._t], rank, 0)
        self.win.Flush(rank)
        return int(self._res[0])

    def set_speed(self, rank: int, ns_per_shard: int) -> None:
        self._org[0] = ns_per_shard
        self.win.Accumulate([self._org, self._t], rank, (1, 1, self._t), self.MPI.REPLACE)
        self.win.Flush(rank)

    def enter_dry(self) -> Request:
        return self.comm.Ibarrier()

    def unlock(self) -> None:
        """End this rank's access epoch (once); its own word stays readable until :meth:`free`."""
        if self._locked:
            self._locked = False
            self.win.Unlock_all()

    def free(self) -> None:
        """Collective. Call only when every rank has unlocked (after a barrier)."""
        self.unlock()
        if self.win:
            self.win.Free()


class Schedule:
    """Iterate to get this rank's shards (in the order to map them); then :meth:`close`, on every rank."""

    name = "static"

    def __init__(self, todo: Sequence[int], rank: int, ranks: int, comm=None) -> None:
        self.todo, self.rank, self.ranks, self.comm = todo, rank, ranks, comm
        self.claims = self.steals = 0

    def __iter__(self) -> Iterator[int]:
        mine = static_blocks(self.todo, self.rank, self.ranks)
        self.claims = 1 if len(mine) else 0
        return iter(mine)

    def close(self, poll: Poll | None = None) -> None:
        """Wait (answering ``poll``) until every rank has finished its shards."""
        if self.comm is not None and self.ranks > 1:
            from hpcdist.comm import wait
            wait(self.comm.Ibarrier(), poll)

    def abandon(self) -> None:
        """Leaving on an exception (the process is about to end): release what is local."""


class Dynamic(Schedule):
    """Claim own blocks, steal tails; see the module docstring. Opening it is collective."""

    name = "dynamic"

    def __init__(self, todo: Sequence[int], rank: int, ranks: int, comm=None, words: Words | None = None,
                 poll: Poll | None = None, **tuning) -> None:
        super().__init__(todo, rank, ranks, comm)
        self.poll = poll
        n = len(todo)
        if words is None:
            words = _WindowWords(comm, pack(*initial_block(n, rank, ranks))) if comm is not None \
                else LocalWords(n, ranks)
        self.words = words
        self.claimer = Claimer(words, rank, ranks, n, **tuning)

    @property
    def atomics(self) -> int:
        return self.claimer.atomics

    def __iter__(self) -> Iterator[int]:
        claimer, todo = self.claimer, self.todo
        start = time.perf_counter()
        inside, done = 0.0, 0
        dry = None
        while True:
            t0 = time.perf_counter()
            per_shard = (t0 - start - inside) / done if done else None
            block = claimer.next_block(per_shard)
            if block is None and not claimer.exhaustive:
                # Termination without sweeping every word (NBX): say "dry" in a non-blocking barrier
                # and keep sampling, backing off, until every rank has said it too.
                dry = dry or self.words.enter_dry()
                pause = DRY_PAUSE_S
                while block is None and not dry.Test():
                    if self.poll is not None:
                        self.poll()
                    time.sleep(pause)
                    pause = min(2 * pause, claimer.claim_s)
                    block = claimer.next_block(per_shard)
            inside += time.perf_counter() - t0
            self.claims, self.steals = claimer.claims, claimer.steals
            if block is None:
                return
            for position in block:
                yield todo[position]
                done += 1

    def close(self, poll: Poll | None = None) -> None:
        if isinstance(self.words, _WindowWords):
            self.words.unlock()
            super().close(poll)         # every rank is done with RMA before the window goes
            self.words.free()

    def abandon(self) -> None:
        if isinstance(self.words, _WindowWords) and self.ranks == 1:
            self.words.unlock()
            self.words.free()


def open_schedule(name: str, todo: Sequence[int], rank: int, ranks: int, comm=None,
                  poll: Poll | None = None) -> Schedule:
    """The schedule ``name`` (already resolved) for this rank; collective for ``dynamic``.
    ``poll`` is called while a dry rank waits for the others to run dry too."""
    if name == "dynamic":
        return Dynamic(todo, rank, ranks, comm, poll=poll)
    if name == "static":
        return Schedule(todo, rank, ranks, comm)
    raise ValueError(f"unknown schedule {name!r}")
