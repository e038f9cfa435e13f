"""Walking a shard in blocks of rows, and merging an intrinsic's lanes in a fixed order.

A shard ``x`` (n, c) is processed in blocks of ``BLOCK_ROWS`` rows (small enough for the block and
its bin indices to stay in L1/L2 between the two passes over it). The intrinsics read a flat
float64 array; ``block_values`` gives them one:

- when ``c`` divides 8 (``cw == c``) all columns go through the lanes together, lane ``l``
  holding column ``l % c``; a C-contiguous float64 shard is read in place, with no copy;
- otherwise each column goes through alone (``cw == 1``), copied into a float64 buffer;
- any other dtype (float32, integers) or a non-contiguous shard is copied into the buffer,
  converted value by value to float64 (exact for float32 and for integers up to 2**53).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

from hpcdist.kernels._ir import LANES

BLOCK_ROWS = 1024


def f64_flat(x):
    """``x`` flattened when it is a C-contiguous float64 array (a view), else an empty array."""


@overload(f64_flat)
def _f64_flat_impl(x):
    if isinstance(x, types.Array) and x.dtype == types.float64 and x.layout == "C":
        return lambda x: x.reshape(-1)
    return lambda x: np.empty(0, np.float64)


def any_flat(x):
    """``x`` flattened when it is C-contiguous (a view, any dtype), else an empty array."""


@overload(any_flat)
def _any_flat_impl(x):
    if isinstance(x, types.Array) and x.layout == "C":
        return lambda x: x.reshape(-1)
    return lambda x: np.empty(0, x.dtype)


@njit(cache=True, nogil=True)
def block_values(x, f64, flat, b0, rows, j0, cw, buf):
    """Rows b0..b0+rows-1 of columns j0..j0+cw-1 as row-major float64: the shard's own memory when
    it can be (``f64`` is f64_flat(x), ``flat`` is any_flat(x)), else a copy in ``buf``.
    Returns (array, index of its first value)."""
    n, c = x.shape
    if flat.size != n * c:                      # not C-contiguous
        for i in range(rows):
            for q in range(cw):
                buf[i * cw + q] = x[b0 + i, j0 + q]
    elif cw == c:
        if f64.size == n * c:
            return f64, b0 * c
        first = b0 * c
        for k in range(rows * c):
            buf[k] = flat[first + k]
    else:
        first = b0 * c + j0
        for i in range(rows):
            buf[i] = flat[first + i * c]
    return buf, 0


@njit(cache=True, nogil=True)
def fold(lanes, base, q, cw, tmp):
    """Sum of column q's lanes (lanes[base + q], lanes[base + q + cw], ...), pairwise, fixed order."""
    w = LANES // cw
    for r in range(w):
        tmp[r] = lanes[base + q + r * cw]
    while w > 1:
        w //= 2
        for r in range(w):
            tmp[r] = tmp[2 * r] + tmp[2 * r + 1]
    return tmp[0]
