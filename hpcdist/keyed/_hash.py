"""Slots for sparse keys: an open-addressing hash table, one pass over the shard's keys.

Multiplicative hashing, linear probing, grown (doubled and rehashed) when half full, sized from
the previous shard's key count rather than its rows. Every row gets its key's slot in first-seen
order; the accumulators are updated in a pass of their own (probes then never wait on them).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hpcdist.kernels import lean_load


@njit(cache=True, nogil=True)
def _hash_slots(shard, key, start, slots, table_keys, table_slot, order, used, shift):
    """From row ``start``: every row's slot (first-seen order, ``order[slot]`` is the key).
    Returns (the row where the table became half full, or -1; slots used)."""
    size = table_keys.shape[0]
    mask = size - 1
    for i in range(start, shard.shape[0]):
        if 2 * used >= size:
            return i, used
        k = np.int64(shard[i, key])
        h = np.int64((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> shift) & mask
        while True:
            s = table_slot[h]
            if s < 0:
                table_slot[h] = used
                table_keys[h] = k
                order[used] = k
                slots[i] = used
                used += 1
                break
            if table_keys[h] == k:
                slots[i] = s
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


for _kernel in (_hash_slots, _rehash):
    lean_load(_kernel)      # arrays only, called from Python: loaded without numba's compiler start-up


def hash_slots(shard: np.ndarray, key: int, slots: np.ndarray, capacity: int) -> tuple[np.ndarray, int, int]:
    """Every row's slot (first-seen order) into ``slots``. Returns the keys in slot order, how
    many there are, and the table size to start the next shard with (from this shard's keys)."""
    size = capacity
    table_keys, table_slot = np.zeros(size, np.int64), np.full(size, -1, np.int64)
    order = np.empty(size // 2, np.int64)              # at most half full: never more keys than this
    row, used = 0, 0
    while True:
        row, used = _hash_slots(shard, key, row, slots, table_keys, table_slot, order, used, _shift(size))
        if row < 0:
            break
        size *= 2
        table_keys, table_slot = np.zeros(size, np.int64), np.full(size, -1, np.int64)
        order = np.concatenate([order[:used], np.empty(size // 2 - used, np.int64)])
        _rehash(order, used, table_keys, table_slot, _shift(size))
    return order, used, max(1 << 10, 1 << (2 * max(used, 1) - 1).bit_length())


def _shift(size: int) -> np.uint64:
    """Multiplicative hashing keeps the top log2(size) bits of the product."""
    return np.uint64(64 - (size.bit_length() - 1))
