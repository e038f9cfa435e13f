"""Per-column min and max of the finite values: the cheap first pass that finds histogram ranges."""

from __future__ import annotations

import numpy as np
from numba import njit

from hpcdist.kernels._blocks import BLOCK_ROWS, any_flat, block_values, f64_flat
from hpcdist.kernels._intrinsics import vx_finite_range
from hpcdist.kernels._ir import LANES


@njit(cache=True, nogil=True)
def finite_range(x):
    """Min and max of the finite values of each column of x (n, c); inf and -inf when none."""
    n, c = x.shape
    mn = np.full(c, np.inf)
    mx = np.full(c, -np.inf)
    if n == 0 or c == 0:
        return mn, mx
    f64 = f64_flat(x)
    flat = any_flat(x)
    cw = c if LANES % c == 0 else 1
    buf = np.empty(BLOCK_ROWS * cw)
    lanes = np.empty(2 * LANES)
    for b0 in range(0, n, BLOCK_ROWS):
        rows = min(BLOCK_ROWS, n - b0)
        for j0 in range(0, c, cw):
            a, s = block_values(x, f64, flat, b0, rows, j0, cw, buf)
            e = s + rows * cw
            e8 = s + rows * cw // LANES * LANES
            vx_finite_range(a, s, e8, lanes)
            for lane in range(LANES):
                j = j0 + lane % cw
                mn[j] = lanes[lane] if lanes[lane] < mn[j] else mn[j]
                mx[j] = lanes[LANES + lane] if lanes[LANES + lane] > mx[j] else mx[j]
            for i in range(e8, e):
                v = a[i]
                j = j0 + (i - s) % cw
                if v - v == 0.0:            # finite (false for NaN and +-inf)
                    mn[j] = v if v < mn[j] else mn[j]
                    mx[j] = v if v > mx[j] else mx[j]
    return mn, mx
