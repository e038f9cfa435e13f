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
def _shared(ka, kb):
    """How many keys both sorted unique arrays hold."""
    i = j = c = 0
    while i < ka.shape[0] and j < kb.shape[0]:
        if ka[i] < kb[j]:
            i += 1
        elif kb[j] < ka[i]:
            j += 1
        else:
            c += 1
            i += 1
            j += 1
    return c


@njit(cache=True, nogil=True)
def _walk(ka, kb, keys, a_only, a_at, b_only, b_at, pa, pb, both):
    n, m = ka.shape[0], kb.shape[0]
    i = j = k = c = na = nb = 0
    while i < n or j < m:
        if j == m or (i < n and ka[i] < kb[j]):
            keys[k] = ka[i]
            a_only[na] = i
            a_at[na] = k
            na += 1
            i += 1
        elif i == n or kb[j] < ka[i]:
            keys[k] = kb[j]
            b_only[nb] = j
            b_at[nb] = k
            nb += 1
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


def union(ka: np.ndarray, kb: np.ndarray) -> Union:
    """The union of two sorted unique int64 key arrays and where every row goes (two linear
    passes: the first counts, so every array is made at its exact size)."""
    c = _shared(ka, kb)
    n, m = len(ka), len(kb)
    u = Union(*(np.empty(size, np.int64) for size in (n + m - c, n - c, n - c, m - c, m - c, c, c, c)))
    _walk(ka, kb, *u)
    return u


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
def _gather(out, src, rows):
    cols = src.shape[1]
    for r in range(rows.shape[0]):
        j = rows[r]
        for c in range(cols):
            out[r, c] = src[j, c]


for _kernel in (_shared, _walk, _scatter, _move, _gather):
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


def gather(src: np.ndarray, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[:] = src[rows]`` in one pass; returns ``out``."""
    if not _fast(src, out) or src.shape[1:] != out.shape[1:]:
        out[...] = src[rows]
        return out
    if len(rows):
        _gather(out.reshape(len(out), -1), src.reshape(len(src), -1), rows)
    return out
