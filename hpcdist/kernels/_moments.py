"""One shard's per-column count, NaN count, sum, mean, M2, min, max and histogram.

Per block of rows (see _blocks), per pass over ``cw`` columns:

1. vx_moments' lanes give the block's count, sum, min and max;
2. vx_m2_bins gives M2 about the *block* mean and every value's bin index (``rebin_slow`` redoes
   the bins of columns whose range is too narrow for the fast rule);
3. a scalar loop counts the indices into the histogram copies;
4. the block joins the shard with Chan et al.'s update (exact count, mean and M2), never a sum
   of squares, so a large offset does not cancel the variance away.

Lanes are merged by ``fold`` in a fixed pairwise tree, the values after the last full vector are
added after it, blocks are merged in row order: the order of every operation is fixed by this
source, so a shard gives the same bits on any CPU.

The block loop is one function on purpose: numba counts references to every array a call
receives, so a step split out into a function costs atomic operations on every block. Only
per-shard set-up and the rare paths (a shard's last few values, narrow ranges) are calls.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hpcdist.kernels._bins import bin_exact, bin_fast, edges, hist_plan
from hpcdist.kernels._blocks import BLOCK_ROWS, any_flat, block_values, f64_flat, fold
from hpcdist.kernels._intrinsics import vx_m2_bins, vx_moments
from hpcdist.kernels._ir import LANES


@njit(cache=True, nogil=True)
def zero_totals(c, bins):
    """A shard's results before any value: count, nan_count, sum, mean, M2, min, max, hist."""
    count = np.zeros(c, np.int64)
    nan_count = np.zeros(c, np.int64)
    total = np.zeros(c)
    mean = np.zeros(c)
    m2 = np.zeros(c)
    mn = np.full(c, np.inf)
    mx = np.full(c, -np.inf)
    hist = np.zeros((c, bins), np.int64)
    return count, nan_count, total, mean, m2, mn, mx, hist


@njit(cache=True, nogil=True)
def scratch(cw):
    """Buffers reused by every block: bin indices, lanes, and per-column block values."""
    idx = np.empty(BLOCK_ROWS * cw, np.uint32)
    lanes = np.empty(4 * LANES)
    qlanes = np.empty(LANES)
    tmp = np.empty(LANES)
    t_sum = np.empty(cw)
    t_nan = np.empty(cw, np.int64)
    t_lo = np.empty(cw)
    t_hi = np.empty(cw)
    t_m2 = np.empty(cw)
    b_count = np.empty(cw, np.int64)
    b_mean = np.empty(cw)
    return idx, lanes, qlanes, tmp, t_sum, t_nan, t_lo, t_hi, t_m2, b_count, b_mean


@njit(cache=True, nogil=True)
def tail_moments(a, s, e8, e, cw, t_sum, t_nan, t_lo, t_hi):
    """Pass 1 over a[e8:e], the last few values of a shard after the last full vector."""
    for i in range(e8, e):
        q = (i - s) % cw
        v = a[i]
        if v == v:
            t_sum[q] += v
            t_lo[q] = v if v < t_lo[q] else t_lo[q]
            t_hi[q] = v if v > t_hi[q] else t_hi[q]
        else:
            t_nan[q] += 1


@njit(cache=True, nogil=True)
def tail_m2_bins(a, s, e8, e, cw, prm_p, offs_p, period, bins, idx, t_m2, b_mean):
    """Pass 2 over a[e8:e]: the same operations as vx_m2_bins, one value at a time."""
    for i in range(e8, e):
        q = (i - s) % cw
        v = a[i]
        if v == v:
            d = v - b_mean[q]
            t_m2[q] += d * d
        t = bin_fast(v, prm_p[LANES + q], prm_p[2 * LANES + q], prm_p[3 * LANES + q],
                     prm_p[4 * LANES + q], bins)
        idx[i - s] = t + offs_p[((i - s) // LANES & (period - 1)) * LANES + (i - s) % LANES]


@njit(cache=True, nogil=True)
def rebin_slow(a, s, m, cw, j0, fast, lo, hi, bins, offs_p, period, idx):
    """The bins of the block's slow columns (narrow or overflowing ranges), numpy's way."""
    for q in range(cw):
        j = j0 + q
        if not fast[j]:
            e = edges(lo[j], hi[j], bins)
            for i in range(q, m, cw):
                t = bin_exact(a[s + i], lo[j], hi[j], e, bins)
                idx[i] = t + offs_p[(i // LANES & (period - 1)) * LANES + i % LANES]


@njit(cache=True, nogil=True)
def unpack_hist(h, hist, c, subs, stride, bins):
    """Add the histogram copies up (without their dump bins) into ``hist``."""
    for j in range(c):
        for sub in range(subs):
            base = (sub * c + j) * stride
            for t in range(bins):
                hist[j, t] += h[base + t]


@njit(cache=True, nogil=True)
def shard_stats(x, lo, hi, bins):
    """count, nan_count, sum, mean, M2, min, max and histogram of each column of x (n, c)."""
    n, c = x.shape
    count, nan_count, total, mean, m2, mn, mx, hist = zero_totals(c, bins)
    if n == 0 or c == 0:
        return count, nan_count, total, mean, m2, mn, mx, hist
    f64 = f64_flat(x)
    flat = any_flat(x)
    cw = c if LANES % c == 0 else 1         # columns per pass over a block
    fast, prm, offs, period, subs, packed = hist_plan(lo, hi, bins, c, cw)
    h = np.zeros(subs * c * (bins + 1) if packed else 0, np.int64)
    all_fast = fast.all()
    buf = np.empty(BLOCK_ROWS * cw)         # the block's values, when they must be copied
    idx, lanes, qlanes, tmp, t_sum, t_nan, t_lo, t_hi, t_m2, b_count, b_mean = scratch(cw)
    for b0 in range(0, n, BLOCK_ROWS):
        rows = min(BLOCK_ROWS, n - b0)
        m = rows * cw
        for p in range(c // cw):
            j0 = p * cw
            a, s = block_values(x, f64, flat, b0, rows, j0, cw, buf)
            e = s + m
            e8 = s + m // LANES * LANES
            # pass 1: count, sum, min, max
            vx_moments(a, s, e8, lanes)
            for q in range(cw):
                t_sum[q], t_nan[q], t_lo[q], t_hi[q], t_m2[q] = 0.0, 0, np.inf, -np.inf, 0.0
            if e8 < e:
                tail_moments(a, s, e8, e, cw, t_sum, t_nan, t_lo, t_hi)
            for q in range(cw):
                j = j0 + q
                block_sum = fold(lanes, 0, q, cw, tmp) + t_sum[q]
                nans = int(fold(lanes, LANES, q, cw, tmp)) + t_nan[q]
                lo_q = t_lo[q]
                hi_q = t_hi[q]
                for r in range(q, LANES, cw):
                    lo_q = lanes[2 * LANES + r] if lanes[2 * LANES + r] < lo_q else lo_q
                    hi_q = lanes[3 * LANES + r] if lanes[3 * LANES + r] > hi_q else hi_q
                mn[j] = lo_q if lo_q < mn[j] else mn[j]
                mx[j] = hi_q if hi_q > mx[j] else mx[j]
                nan_count[j] += nans
                total[j] += block_sum
                b_count[q] = rows - nans
                b_mean[q] = block_sum / b_count[q] if b_count[q] > 0 else 0.0
            # pass 2: M2 about the block mean, and each value's bin (+ its histogram copy)
            for lane in range(LANES):
                prm[p, lane] = b_mean[lane % cw]
            vx_m2_bins(a, s, e8, prm[p], offs[p], period - 1, bins, idx, qlanes)
            if e8 < e:
                tail_m2_bins(a, s, e8, e, cw, prm[p], offs[p], period, bins, idx, t_m2, b_mean)
            if not all_fast:
                rebin_slow(a, s, m, cw, j0, fast, lo, hi, bins, offs[p], period, idx)
            if packed:                          # the histogram
                for i in range(m):
                    h[idx[i]] += 1
            else:
                for i in range(m):
                    if idx[i] < bins:
                        hist[j0 + i % cw, idx[i]] += 1
            for q in range(cw):                 # merge the block into the shard (Chan et al.)
                j = j0 + q
                k = b_count[q]
                if k == 0:
                    continue
                block_m2 = fold(qlanes, 0, q, cw, tmp) + t_m2[q]
                na = count[j]
                nt = na + k
                share = k / nt
                delta = b_mean[q] - mean[j]
                mean[j] += delta * share
                m2[j] += block_m2 + delta * delta * (na * share)
                count[j] = nt
    if packed:
        unpack_hist(h, hist, c, subs, bins + 1, bins)
    return count, nan_count, total, mean, m2, mn, mx, hist
