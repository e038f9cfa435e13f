"""Merging two sorted unique key arrays in one linear pass (numba), and moving rows by index.

``np.union1d`` + ``np.isin`` sort again what is already sorted, and numpy's fancy indexing costs
several times a plain copy; at 10^6 keys per node they were most of a group-by's time. The walk is
O(n + m) and tells every row where it goes; the moves below are plain numba copies by index.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from hpcdist.kernels import lean_load


class Union(NamedTuple):
    """Where the rows of ``a`` and ``b`` go in their union ``keys``: ``a_only`` rows of a go to
    ``a_at``, ``b_only`` rows of b to ``b_at``; the keys both hold are ``a[pa]`` and ``b[pb]``
    (ascending), their combined rows go to ``both_at``."""

    keys: np.ndarray
    a_only: np.ndarray
    a_at: np.ndarray
    b_only: np.ndarray
    b_at: np.ndarray
    pa: np.ndarray
    pb: np.ndarray
    both_at: np.ndarray


@njit(cache=True, nogil=True)
def _walk(ka, kb):
    n, m = ka.shape[0], kb.shape[0]
    keys = np.empty(n + m, np.int64)
    only = np.empty(n + m, np.int64)     # a-only positions from the front, b-only from the back
    at = np.empty(n + m, np.int64)
    pa = np.empty(min(n, m), np.int64)
    pb = np.empty(min(n, m), np.int64)
    both = np.empty(min(n, m), np.int64)
    i = j = k = c = na = 0
    nb = n + m
    while i < n or j < m:
        if j == m or (i < n and ka[i] < kb[j]):
            keys[k] = ka[i]
            only[na] = i
            at[na] = k
            na += 1
            i += 1
        elif i == n or kb[j] < ka[i]:
            keys[k] = kb[j]
            nb -= 1
            only[nb] = j
            at[nb] = k
            j += 1
        else:
            keys[k] = ka[i]
            pa[c] = i
            pb[c] = j
            both[c] = k
            c += 1
            i += 1
            j += 1
        k += 1
    return keys[:k], only, at, na, nb, pa[:c], pb[:c], both[:c]


def union(ka: np.ndarray, kb: np.ndarray) -> Union:
    """The union of two sorted unique int64 key arrays and where every row goes."""
    keys, only, at, na, nb, pa, pb, both = _walk(ka, kb)
    return Union(keys, only[:na], at[:na], only[nb:][::-1], at[nb:][::-1], pa, pb, both)


@njit(cache=True, nogil=True)
def _scatter(out, idx, src):
    cols = src.shape[1]
    for r in range(idx.shape[0]):
        k = idx[r]
        for c in range(cols):
            out[k, c] = src[r, c]


@njit(cache=True, nogil=True)
def _move(out, at, src, rows):
    cols = src.shape[1]
    for r in range(rows.shape[0]):
        k, j = at[r], rows[r]
        for c in range(cols):
            out[k, c] = src[j, c]


@njit(cache=True, nogil=True)
def _align(out, other, rows, own):
    """out[i] = other[rows[i]] where rows[i] >= 0, else own[i]."""
    cols = own.shape[1]
    for i in range(rows.shape[0]):
        j = rows[i]
        if j >= 0:
            for c in range(cols):
                out[i, c] = other[j, c]
        else:
            for c in range(cols):
                out[i, c] = own[i, c]


for _kernel in (_walk, _scatter, _move, _align):
    lean_load(_kernel)      # arrays only, called from Python: loaded without numba's compiler start-up


def _fast(*arrays: np.ndarray) -> bool:
    return all(a.flags.c_contiguous and a.dtype.kind in "iuf" for a in arrays) and \
        len({a.dtype for a in arrays}) == 1


def place(out: np.ndarray, idx: np.ndarray, src: np.ndarray) -> None:
    """``out[idx] = src`` (rows, any trailing shape; numpy's casting when the dtypes differ)."""
    if len(idx) == 0:
        return
    if not _fast(out, src) or src.shape[1:] != out.shape[1:]:
        out[idx] = src
        return
    _scatter(out.reshape(len(out), -1), idx, src.reshape(len(src), -1))


def move(out: np.ndarray, at: np.ndarray, src: np.ndarray, rows: np.ndarray) -> None:
    """``out[at] = src[rows]`` in one pass."""
    if len(rows) == 0:
        return
    if not _fast(out, src) or src.shape[1:] != out.shape[1:]:
        out[at] = src[rows]
        return
    _move(out.reshape(len(out), -1), at, src.reshape(len(src), -1), rows)


def align(other: np.ndarray, rows: np.ndarray, own: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``other``'s rows laid out as ``own``'s: row i is ``other[rows[i]]``, or ``own[i]`` where
    ``rows[i] < 0`` (a filler whose combined value is thrown away)."""
    if not _fast(other, own, out) or other.shape[1:] != own.shape[1:]:
        out[...] = own
        hit = rows >= 0
        out[hit] = other[rows[hit]]
        return out
    if len(rows):
        _align(out.reshape(len(out), -1), other.reshape(len(other), -1), rows, own.reshape(len(own), -1))
    return out
