"""The per-shard group-by kernel of jobs/groupby.py: count, sum, mean, M2, min, max per key.

Numba, three passes over the shard, no copy of it: (1) every row's key is checked (an integer
value) and turned into a *slot*; (2) the values update their slot's count, sum, min and max; (3)
the squared deviations from the slot's mean give M2. The rows of a key are visited in row order,
so a shard's partial is a pure function of its rows (the same bits whichever rank maps it).

Slots: when the keys span a range no wider than half the shard's rows (the common case: dense
ids), the slot is ``key - min key`` and the partial comes out sorted for free; otherwise an
open-addressing hash table (multiplicative hash, linear probing, grown when half full, sized from
the previous shard's key count, not from its rows) gives slots in first-seen order, sorted after.
Finding every row's slot before updating (pass 1 before 2) lets the accumulator updates run without
waiting on table probes. The accumulators live in a workspace kept between shards, one cache line
per key for pass 2: reusing memory avoids page faults on every shard, and only the rows a shard
touched are reset.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

FIELDS = 4                  # per value column in pass 2: count, sum, min, max
_EMPTY = np.array([0.0, 0.0, np.inf, -np.inf])


class BadKey(NamedTuple):
    """The first row whose key is not an integer (NaN, infinite, fractional or out of int64)."""

    row: int
    value: float


@njit(cache=True, nogil=True)
def _scan_keys(shard, key, out):
    """Keys -> int64 in ``out``; (first bad row or -1, min key, max key)."""
    kmin = kmax = np.int64(0)
    for i in range(shard.shape[0]):
        x = shard[i, key]
        if not (-9.223372036854775808e18 <= x < 9.223372036854775808e18):    # NaN fails too
            return i, kmin, kmax
        k = np.int64(x)
        if np.float64(k) != x:
            return i, kmin, kmax
        out[i] = k
        kmin = min(kmin, k) if i else k
        kmax = max(kmax, k) if i else k
    return -1, kmin, kmax


@njit(cache=True, nogil=True)
def _dense_slots(keys, kmin, seen):
    """In place: key -> key - kmin; marks the slots seen."""
    for i in range(keys.shape[0]):
        s = keys[i] - kmin
        keys[i] = s
        seen[s] = 1


@njit(cache=True, nogil=True)
def _hash_slots(keys, start, table_keys, table_slot, order, used, shift):
    """In place from row ``start``: key -> slot (first-seen order, ``order[slot]`` is the key).
    Returns (the row where the table became half full, or -1; slots used)."""
    size = table_keys.shape[0]
    mask = size - 1
    for i in range(start, keys.shape[0]):
        if 2 * used >= size:
            return i, used
        k = keys[i]
        h = np.int64((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> shift) & mask
        while True:
            s = table_slot[h]
            if s < 0:
                table_slot[h] = used
                table_keys[h] = k
                order[used] = k
                keys[i] = used
                used += 1
                break
            if table_keys[h] == k:
                keys[i] = s
                break
            h = (h + 1) & mask
    return -1, used


@njit(cache=True, nogil=True)
def _rehash(order, used, table_keys, table_slot, shift):
    size = table_keys.shape[0]
    mask = size - 1
    for s in range(used):
        k = order[s]
        h = np.int64((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> shift) & mask
        while table_slot[h] >= 0:
            h = (h + 1) & mask
        table_slot[h] = s
        table_keys[h] = k


@njit(cache=True, nogil=True)
def _first_pass(shard, key, slots, acc):
    """count, sum, min, max per slot and value column, rows in order (NaNs left out)."""
    for i in range(shard.shape[0]):
        s = slots[i]
        for c in range(shard.shape[1] - 1):
            x = np.float64(shard[i, c + (c >= key)])
            if x == x:
                b = 4 * c
                acc[s, b] += 1.0
                acc[s, b + 1] += x
                if x < acc[s, b + 2]:
                    acc[s, b + 2] = x
                if x > acc[s, b + 3]:
                    acc[s, b + 3] = x


@njit(cache=True, nogil=True)
def _means(acc, present, dev):
    """dev[s, 2c] = sum / count (0 for no value), dev[s, 2c + 1] = 0, for the present slots."""
    cols = acc.shape[1] // 4
    for r in range(present.shape[0]):
        s = present[r]
        for c in range(cols):
            n = acc[s, 4 * c]
            dev[s, 2 * c] = acc[s, 4 * c + 1] / n if n > 0 else 0.0
            dev[s, 2 * c + 1] = 0.0


@njit(cache=True, nogil=True)
def _second_pass(shard, key, slots, dev):
    """M2: squared deviations from the slot's mean, rows in order."""
    for i in range(shard.shape[0]):
        s = slots[i]
        for c in range(shard.shape[1] - 1):
            x = np.float64(shard[i, c + (c >= key)])
            if x == x:
                d = x - dev[s, 2 * c]
                dev[s, 2 * c + 1] += d * d


@njit(cache=True, nogil=True)
def _collect(acc, dev, present, count, total, lo, hi, mean, m2, empty):
    """The present slots' accumulators into the (keys, columns) results; their slots reset."""
    cols = count.shape[1]
    for r in range(present.shape[0]):
        s = present[r]
        for c in range(cols):
            count[r, c] = np.int64(acc[s, 4 * c])
            total[r, c] = acc[s, 4 * c + 1]
            lo[r, c] = acc[s, 4 * c + 2]
            hi[r, c] = acc[s, 4 * c + 3]
            mean[r, c] = dev[s, 2 * c]
            m2[r, c] = dev[s, 2 * c + 1]
            for f in range(4):
                acc[s, 4 * c + f] = empty[f]


class _Workspace:
    """Buffers kept between shards (one per process): slots per row, accumulators per slot."""

    def __init__(self) -> None:
        self.cols = -1
        self.slots = np.empty(0, np.int64)
        self.acc = np.empty((0, 0))
        self.dev = np.empty((0, 0))
        self.seen = np.empty(0, np.uint8)
        self.capacity = 1 << 10          # hash table: grows, remembered for the next shard

    def rows(self, n: int) -> np.ndarray:
        if len(self.slots) < n:
            self.slots = np.empty(n, np.int64)
        return self.slots[:n]

    def accumulators(self, slots: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        if cols != self.cols or len(self.acc) < slots:
            grown = max(slots, 2 * len(self.acc)) if cols == self.cols else slots
            self.acc = np.tile(_EMPTY, (grown, cols))
            self.dev = np.zeros((grown, 2 * cols))
            self.cols = cols
        return self.acc, self.dev

    def marks(self, span: int) -> np.ndarray:
        if len(self.seen) < span:
            self.seen = np.zeros(max(span, 2 * len(self.seen)), np.uint8)
        return self.seen[:span]


_WORK = _Workspace()


def group_stats_of(shard: np.ndarray, key: int) -> tuple[np.ndarray, dict[str, np.ndarray]] | BadKey:
    """Sorted unique keys of column ``key`` and, per key and other column (in order): count (NaNs
    left out), sum, mean, m2, min, max (a group with no value: count 0, sum/mean/m2 0, min +inf,
    max -inf). A key that is not an integer value: the first such row, as :class:`BadKey`."""
    n, cols = shard.shape[0], shard.shape[1] - 1
    work = _WORK
    slots = work.rows(n)
    bad, kmin, kmax = _scan_keys(shard, key, slots)
    if bad >= 0:
        return BadKey(int(bad), float(shard[bad, key]))
    if n == 0:
        keys, present = np.zeros(0, np.int64), np.zeros(0, np.int64)
        acc, dev = work.accumulators(0, cols)
    elif kmax - kmin < max(n // 2, 4096):
        seen = work.marks(int(kmax - kmin) + 1)
        _dense_slots(slots, kmin, seen)
        present = np.flatnonzero(seen)
        seen[:] = 0
        keys = present + kmin
        acc, dev = work.accumulators(len(seen), cols)
    else:
        order, used = _hashed(slots, work)
        by_key = np.argsort(order[:used], kind="stable")
        keys, present = order[:used][by_key], by_key
        acc, dev = work.accumulators(used, cols)
    _first_pass(shard, key, slots, acc)
    _means(acc, present, dev)
    _second_pass(shard, key, slots, dev)
    u = len(keys)
    out = {"count": np.empty((u, cols), np.int64)}
    for name in ("sum", "min", "max", "mean", "m2"):
        out[name] = np.empty((u, cols))
    _collect(acc, dev, present, out["count"], out["sum"], out["min"], out["max"], out["mean"], out["m2"],
             _EMPTY)
    return keys, {name: out[name] for name in ("count", "sum", "mean", "m2", "min", "max")}


def _hashed(slots: np.ndarray, work: _Workspace) -> tuple[np.ndarray, int]:
    """Keys -> first-seen slots in place; the keys in slot order and how many."""
    size = work.capacity
    table_keys, table_slot = np.zeros(size, np.int64), np.full(size, -1, np.int64)
    order = np.empty(len(slots), np.int64)
    row, used = 0, 0
    while True:
        row, used = _hash_slots(slots, row, table_keys, table_slot, order, used, _shift(size))
        if row < 0:
            break
        size *= 2
        table_keys, table_slot = np.zeros(size, np.int64), np.full(size, -1, np.int64)
        _rehash(order, used, table_keys, table_slot, _shift(size))
    work.capacity = max(1 << 10, 1 << (2 * max(used, 1) - 1).bit_length())
    return order, used


def _shift(size: int) -> np.uint64:
    """Multiplicative hashing keeps the top log2(size) bits of the product."""
    return np.uint64(64 - (size.bit_length() - 1))
