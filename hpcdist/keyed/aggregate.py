"""The per-shard group-by kernel of jobs/groupby.py: count, sum, mean, M2, min, max per key.

Numba, no copy of the shard when the keys are few: one pass gives every row its *slot* and
updates the slot's count, sum, min, max and the sums of ``x - shift`` and its square, where
``shift`` is the key's first value in the shard (the textbook guard against cancellation: M2 =
sum (x-shift)^2 - (sum (x-shift))^2 / n). The rows of a key are visited in row order, so a
shard's partial is a pure function of its rows (the same bits whichever rank maps it, and
whichever of the paths below computes it).

Slots: when the keys span a range no wider than half the shard's rows (the common case: dense
ids), the slot is ``key - min key`` and the partial comes out sorted for free. The pass first
tries the previous shard's key range, checking every key as it goes (ids spread over every shard
need no scan); a key outside it undoes the pass, and a scan finds the range. Past 8 MiB of
accumulators (65,536 keys at two value columns) they no longer fit in the caches and every row
would miss twice; the rows are then first copied in bucket order (a stable counting sort on the
slot's high bits, with the slot in a spare column) and accumulated one bucket at a time in a
128 KiB window, each bucket's keys written out as soon as it is done. Measured here (5.5 M rows,
two value columns): one direct pass 34 ms at 1,000 keys, 47 ms at 65,536, 215 ms at 131,072;
with buckets 72 ms at 131,072 and 122 ms at 10^6 (with 8,192-key windows and a full accumulator
array: 171 ms). Otherwise (sparse keys) a hash table gives every row its slot in a pass of its
own (:mod:`._hash`), in first-seen order, sorted after.
The accumulators, 7 doubles per key and column padded to whole cache lines, live in a workspace
kept between shards: reusing memory avoids page faults on every shard, and only the slots a shard
touched are reset.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from hpcdist.kernels import lean_load
from hpcdist.keyed._hash import hash_slots
from hpcdist.keyed.chan import NAMES

STRIDE = 7                  # per key and value column: count, sum, shift, s1, s2, min, max
_EMPTY = np.array([0.0, 0.0, 0.0, 0.0, 0.0, np.inf, -np.inf])
LINE = 8                    # doubles per cache line: a key's accumulators start on a line
DIRECT_BYTES = 8 << 20      # accumulators up to this size: one direct pass (L3 holds them)
WINDOW_BYTES = 128 << 10    # beyond: buckets whose accumulators fit in L2


class BadKey(NamedTuple):
    """The first row whose key is not an integer (NaN, infinite, fractional or out of int64)."""

    row: int
    value: float


@njit(cache=True, nogil=True)
def _scan_keys(shard, key):
    """(first row whose key is not an integer value or -1, min key, max key)."""
    kmin = kmax = np.int64(0)
    for i in range(shard.shape[0]):
        x = shard[i, key]
        if not (-9.223372036854775808e18 <= x < 9.223372036854775808e18):    # NaN fails too
            return i, kmin, kmax
        k = np.int64(x)
        if np.float64(k) != x:
            return i, kmin, kmax
        kmin = min(kmin, k) if i else k
        kmax = max(kmax, k) if i else k
    return -1, kmin, kmax


@njit(cache=True, nogil=True)
def _add(acc, s, b, x):
    """One value ``x`` (not NaN) into slot ``s``'s accumulators of a column starting at ``b``."""
    n = acc[s, b]
    shift = x if n == 0.0 else acc[s, b + 2]
    d = x - shift
    acc[s, b] = n + 1.0
    acc[s, b + 1] += x
    acc[s, b + 2] = shift
    acc[s, b + 3] += d
    acc[s, b + 4] += d * d
    lo, hi = acc[s, b + 5], acc[s, b + 6]
    acc[s, b + 5] = x if x < lo else lo         # selects, not branches: with a few rows per key
    acc[s, b + 6] = x if x > hi else hi         # they are unpredictable


@njit(cache=True, nogil=True)
def _put(acc, s, r, count, total, mean, m2, lo, hi, empty):
    """Slot ``s``'s accumulators as result row ``r``; the slot reset for the next shard."""
    for c in range(count.shape[1]):
        b = STRIDE * c
        n = acc[s, b]
        count[r, c] = np.int64(n)
        total[r, c] = acc[s, b + 1]
        mean[r, c] = acc[s, b + 1] / n if n > 0.0 else 0.0
        q = acc[s, b + 4] - acc[s, b + 3] * acc[s, b + 3] / n if n > 0.0 else 0.0
        m2[r, c] = q if q > 0.0 else 0.0
        lo[r, c] = acc[s, b + 5]
        hi[r, c] = acc[s, b + 6]
        for f in range(STRIDE):
            acc[s, b + f] = empty[f]


@njit(cache=True, nogil=True)
def _accumulate(shard, key, slots, kmin, dense, seen, acc):
    """Per slot and value column, rows in order, NaNs left out: count, sum, shift, sum of
    (x - shift), sum of its square, min, max. Dense: slot = key - kmin (marked in ``seen``)."""
    for i in range(shard.shape[0]):
        if dense:
            s = np.int64(shard[i, key]) - kmin
            seen[s] = 1
        else:
            s = slots[i]
        for c in range(shard.shape[1] - 1):
            x = np.float64(shard[i, c + (c >= key)])
            if x == x:
                _add(acc, s, STRIDE * c, x)


@njit(cache=True, nogil=True)
def _accumulate_within(shard, key, lo, hi, seen, acc):
    """The dense :func:`_accumulate` for keys expected in ``[lo, hi]`` (the previous shard's range),
    checking each key as it goes, so no scan pass is needed. Returns -1, or the first row whose
    key is not an integer value in the range (the rows before it are accumulated: undo them)."""
    flo, fhi = np.float64(lo), np.float64(hi)
    for i in range(shard.shape[0]):
        x = shard[i, key]
        if not (flo <= x <= fhi):                   # NaN fails too
            return i
        k = np.int64(x)
        if np.float64(k) != x:
            return i
        s = k - lo
        seen[s] = 1
        for c in range(shard.shape[1] - 1):
            v = np.float64(shard[i, c + (c >= key)])
            if v == v:
                _add(acc, s, STRIDE * c, v)
    return -1


@njit(cache=True, nogil=True)
def _bucket_starts(shard, key, kmin, bits, starts):
    """``starts[b]``: where bucket ``b`` (slots ``b << bits`` on) begins among the rows put in
    bucket order (``starts`` zeroed by the caller)."""
    for i in range(shard.shape[0]):
        starts[(np.int64(shard[i, key]) - kmin) >> bits] += 1
    total = 0
    for b in range(starts.shape[0]):
        n = starts[b]
        starts[b] = total
        total += n


@njit(cache=True, nogil=True)
def _bucket_rows(shard, key, kmin, bits, starts, seen, values):
    """Every row's values (as float64) and, in the last column, its slot, in bucket order,
    stably: a key's rows keep their order, so accumulating them gives the same bits as
    accumulating the shard itself."""
    last = shard.shape[1] - 1
    for i in range(shard.shape[0]):
        s = np.int64(shard[i, key]) - kmin
        seen[s] = 1
        b = s >> bits
        p = starts[b]
        starts[b] = p + 1
        for c in range(last):
            values[p, c] = np.float64(shard[i, c + (c >= key)])
        values[p, last] = np.float64(s)


@njit(cache=True, nogil=True)
def _accumulate_buckets(values, bits, ends, present, window, count, total, mean, m2, lo, hi, empty):
    """Rows in bucket order (:func:`_bucket_rows`: values, then the slot), one bucket at a time
    into ``window`` (the accumulators of one bucket's slots, in L2), whose present slots become
    their result rows as soon as the bucket is done: no accumulator array for every key."""
    cols = values.shape[1] - 1
    first, r = 0, 0
    for bucket in range(ends.shape[0]):
        base = bucket << bits
        for p in range(first, ends[bucket]):
            w = np.int64(values[p, cols]) - base
            for c in range(cols):
                x = values[p, c]
                if x == x:
                    _add(window, w, STRIDE * c, x)
        first = ends[bucket]
        top = base + (1 << bits)
        while r < present.shape[0] and present[r] < top:
            _put(window, present[r] - base, r, count, total, mean, m2, lo, hi, empty)
            r += 1


@njit(cache=True, nogil=True)
def _collect(acc, present, count, total, mean, m2, lo, hi, empty):
    """The present slots' accumulators as (keys, columns) results, in ``present`` order; their
    accumulators reset for the next shard."""
    for r in range(present.shape[0]):
        _put(acc, present[r], r, count, total, mean, m2, lo, hi, empty)


for _kernel in (_scan_keys, _accumulate, _accumulate_within, _accumulate_buckets, _bucket_starts, _bucket_rows,
                _collect):
    lean_load(_kernel)      # arrays only, called from Python: loaded without numba's compiler start-up


class _Workspace:
    """Buffers kept between shards (one per process): slots per row, accumulators per slot."""

    def __init__(self) -> None:
        self.slots = np.empty(0, np.int64)
        self.acc = np.empty((0, 0))
        self.win = np.empty((0, 0))
        self.seen = np.empty(0, np.uint8)
        self.values = np.empty((0, 0))
        self.capacity = 1 << 10          # hash table: grows, remembered for the next shard
        self.span: tuple[int, int] | None = None   # the last shard's key range, when few dense keys

    def rows(self, n: int) -> np.ndarray:
        if len(self.slots) < n:
            self.slots = np.empty(n, np.int64)
        return self.slots[:n]

    def accumulators(self, slots: int, cols: int) -> np.ndarray:
        width = _width(cols)
        if self.acc.shape[1:] != (width,) or len(self.acc) < slots:
            grown = max(slots, 2 * len(self.acc)) if self.acc.shape[1:] == (width,) else slots
            self.acc = _line_aligned(grown, width)
            self.acc[:, :STRIDE * cols] = np.tile(_EMPTY, cols)
        return self.acc

    def window(self, slots: int, cols: int) -> np.ndarray:
        """One bucket's accumulators (reset by the kernel as it writes each key out)."""
        if self.win.shape != (slots, _width(cols)):
            self.win = _line_aligned(slots, _width(cols))
            self.win[:, :STRIDE * cols] = np.tile(_EMPTY, cols)
        return self.win

    def bucketed(self, n: int, cols: int) -> np.ndarray:
        """Rows in bucket order, float64: ``cols`` values and the slot (``_accumulate`` reads it as
        the key of a dense shard whose first key is 0)."""
        if len(self.values) < n or self.values.shape[1] != cols + 1:
            self.values = np.empty((n, cols + 1))
        return self.values[:n]

    def marks(self, span: int) -> np.ndarray:
        if len(self.seen) < span:
            self.seen = np.zeros(max(span, 2 * len(self.seen)), np.uint8)
        return self.seen[:span]


def _line_aligned(rows: int, width: int) -> np.ndarray:
    """A (rows, width) float64 array whose rows start on 64-byte boundaries."""
    raw = np.empty(rows * width + LINE)
    skip = (-raw.ctypes.data % 64) // 8
    return raw[skip:skip + rows * width].reshape(rows, width)


_WORK = _Workspace()


def group_stats_of(shard: np.ndarray, key: int) -> tuple[np.ndarray, dict[str, np.ndarray]] | BadKey:
    """Sorted unique keys of column ``key`` and, per key and other column (in order): count (NaNs
    left out), sum, mean, m2, min, max (a group with no value: count 0, sum/mean/m2 0, min +inf,
    max -inf). A key that is not an integer value: the first such row, as :class:`BadKey`."""
    n, cols = shard.shape[0], shard.shape[1] - 1
    work = _WORK
    within = _within_last_span(shard, key, work)
    if within is not None:
        return within
    bad, kmin, kmax = _scan_keys(shard, key)
    if bad >= 0:
        return BadKey(int(bad), float(shard[bad, key]))
    dense = n == 0 or kmax - kmin < max(n // 2, 4096)
    slots = work.rows(0 if dense else n)            # the hash table's slot per row
    if dense:
        seen = work.marks(int(kmax - kmin) + 1 if n else 0)
        width = _width(cols)
        if len(seen) * width * 8 > DIRECT_BYTES:    # accumulators beyond the caches: buckets
            work.span = None
            return _bucketed(shard, key, kmin, seen, work)
        acc = work.accumulators(len(seen), cols)
        _accumulate(shard, key, slots, kmin, True, seen, acc)
        work.span = (int(kmin), int(kmax)) if n and max(-int(kmin), int(kmax)) < _EXACT else None
        present = np.flatnonzero(seen)
        seen[:] = 0
        keys = present + kmin
    else:
        work.span = None
        order, used, work.capacity = hash_slots(shard, key, slots, work.capacity)
        acc = work.accumulators(used, cols)
        _accumulate(shard, key, slots, kmin, False, work.marks(0), acc)
        present = np.argsort(order[:used], kind="stable")
        keys = order[:used][present]
    out = _results(len(keys), cols)
    _collect(acc, present, *out.values(), _EMPTY)
    return keys, out


def _bucketed(shard: np.ndarray, key: int, kmin: int, seen: np.ndarray, work: _Workspace
              ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Many dense keys: the rows copied in bucket order, then accumulated one bucket (one
    L2-sized window of slots) at a time, each bucket's keys written out as soon as it is done."""
    n, cols = shard.shape[0], shard.shape[1] - 1
    width = _width(cols)
    bits = max(4, (WINDOW_BYTES // (width * 8)).bit_length() - 1)
    ends = np.zeros(((len(seen) - 1) >> bits) + 1, np.int64)
    values = work.bucketed(n, cols)
    _bucket_starts(shard, key, kmin, bits, ends)
    _bucket_rows(shard, key, kmin, bits, ends, seen, values)     # ends[b]: where bucket b ends
    present = np.flatnonzero(seen)
    seen[:] = 0
    out = _results(len(present), cols)
    _accumulate_buckets(values, bits, ends, present, work.window(1 << bits, cols), *out.values(), _EMPTY)
    return present + kmin, out


def _results(keys: int, cols: int) -> dict[str, np.ndarray]:
    return {name: np.empty((keys, cols), np.int64 if name == "count" else np.float64) for name in NAMES}


def _width(cols: int) -> int:
    """Doubles per slot: ``STRIDE`` per column, padded to whole cache lines."""
    return -(-STRIDE * cols // LINE) * LINE


_EXACT = 1 << 52             # keys whose float64 comparisons with the range are exact


def _within_last_span(shard: np.ndarray, key: int, work: _Workspace
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """The shard in one pass when its keys fall in the last shard's range of few dense keys (ids
    spread over every shard: the common case); None, with nothing left accumulated, otherwise.
    Every key's rows are accumulated in row order either way: the same bits as the scan path."""
    if work.span is None:
        _accumulate_within(shard[:0], key, 0, 0, work.marks(1), work.accumulators(1, shard.shape[1] - 1))
        return None                     # (the call above loads the kernel in the warm-up)
    lo, hi = work.span
    cols = shard.shape[1] - 1
    seen = work.marks(hi - lo + 1)
    acc = work.accumulators(len(seen), cols)
    stopped = _accumulate_within(shard, key, lo, hi, seen, acc) if len(shard) else 0
    present = np.flatnonzero(seen)
    seen[:] = 0
    if stopped >= 0:                    # a key outside the range (or not an integer): undo
        acc[present, :STRIDE * cols] = np.tile(_EMPTY, cols)
        work.span = None
        return None
    out = _results(len(present), cols)
    _collect(acc, present, *out.values(), _EMPTY)
    return present + lo, out
