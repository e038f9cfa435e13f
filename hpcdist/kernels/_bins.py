"""numpy.histogram's bins, exactly: the fast estimate-and-correct rule and numpy's own arithmetic.

numpy bins a value v of [lo, hi] by an estimate t = (v - lo) * bins / (hi - lo), then corrects t
against the edges t * step + lo (the last edge is hi). Whenever a bin is wider than
2**-40 * max(|lo|, |hi|) the estimate is within one bin of the right one, numpy's own estimate
too, so both corrections land on the same bin: that is the vector path (``vx_m2_bins``, and
``bin_fast`` for the few values after the last full vector). Narrower bins, and ranges whose
width overflows, take ``bin_exact``, which repeats numpy's arithmetic operation for operation.

Counting: each value's bin index (plus the offset of one of ``SUBHISTS`` interleaved copies of
the histogram, so runs of one bin do not wait on a single counter) is written to an index buffer
and counted in a scalar loop. Every copy has one extra "dump" bin for values outside [lo, hi].
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hpcdist.kernels._ir import LANES

SUBHISTS = 4
SUBHIST_MAX_BINS = 4096     # c * (bins + 1) above this: one histogram copy (memory, zeroing)
TINY_STEP = 2.0 ** -40


@njit(cache=True, nogil=True)
def bin_fast(v, lo, hi, step, scale, bins):
    """numpy.histogram's bin of v, or ``bins`` when v is outside [lo, hi] or NaN: the same
    operations as vx_m2_bins (valid for the ranges that take the fast path, see above)."""
    if not (v >= lo and v <= hi):
        return bins
    last = bins - 1
    f = (v - lo) * scale
    f = f if f < last else float(last)
    t = int(f)
    tf = float(t)
    e0 = tf * step + lo
    e1 = np.inf if tf == last else (tf + 1.0) * step + lo
    if v < e0:
        t -= 1
    elif v >= e1:
        t += 1
    return max(t, 0)


@njit(cache=True, nogil=True)
def edges(lo, hi, bins):
    """np.linspace(lo, hi, bins + 1), operation for operation (evenly spaced if hi - lo overflows,
    where numpy itself gives NaN edges)."""
    e = np.empty(bins + 1)
    delta = hi - lo
    if delta - delta != 0.0:
        step = hi / bins - lo / bins
        for t in range(bins):
            e[t] = t * step + lo
    else:
        step = delta / bins
        for t in range(bins):
            e[t] = (t / bins) * delta + lo if step == 0.0 else t * step + lo
    e[bins] = hi
    return e


@njit(cache=True, nogil=True)
def bin_exact(v, lo, hi, edges, bins):
    """numpy.histogram's bin of v for any range: its own estimate and correction (a search on the
    edges when that estimate is not a number), or ``bins`` when v is outside [lo, hi] or NaN."""
    if not (v >= lo and v <= hi):
        return bins
    last = bins - 1
    f = ((v - lo) / (hi - lo)) * bins
    if f >= 0.0 and f <= bins:
        t = min(int(f), last)
        if v < edges[t]:
            t -= 1
        elif v >= edges[t + 1] and t != last:
            t += 1
    else:
        t = np.searchsorted(edges, v, side="right") - 1
    return min(max(t, 0), last)


@njit(cache=True, nogil=True)
def hist_plan(lo, hi, bins, c, cw):
    """The per-lane parameters of vx_m2_bins for each pass over ``cw`` of the ``c`` columns.

    Returns (fast, prm, offs, period, subs, packed): ``fast[j]`` says whether column j's bins take
    the vector path; ``prm[p]`` holds five 8-lane vectors (the block mean, filled in per block,
    then lo, hi, step, scale); ``offs[p]`` the offset of each lane's histogram copy, a pattern
    that repeats every ``period`` vectors; ``packed`` whether a bin plus its offset fits a uint32.
    """
    passes = c // cw
    stride = bins + 1                       # each histogram copy has a dump bin for the outsiders
    subs = SUBHISTS if c * stride <= SUBHIST_MAX_BINS else 1
    packed = subs * c * stride < 2**31      # idx = bin + offset of its copy, one uint32
    step = np.empty(c)
    scale = np.empty(c)
    fast = np.empty(c, np.bool_)
    for j in range(c):
        delta = hi[j] - lo[j]
        step[j] = delta / bins
        scale[j] = bins / delta
        fast[j] = (delta - delta == 0.0 and step[j] > TINY_STEP * max(abs(lo[j]), abs(hi[j]))
                   and bins < 2**30)
    # lane l of pass p is column p * cw + l % cw; the k-th vector of a block sends its lanes to
    # histogram copy (row % subs), row = (8 k + l) // cw, a pattern that repeats every period
    period = max(1, subs * cw // LANES)
    prm = np.empty((passes, 5 * LANES))
    offs = np.zeros((passes, period * LANES), np.int32)
    for p in range(passes):
        for lane in range(LANES):
            j = p * cw + lane % cw
            ok = fast[j]                    # slow columns get harmless values; their bins are redone
            prm[p, LANES + lane] = lo[j] if ok else 0.0
            prm[p, 2 * LANES + lane] = hi[j] if ok else 1.0
            prm[p, 3 * LANES + lane] = step[j] if ok else 1.0 / bins
            prm[p, 4 * LANES + lane] = scale[j] if ok else float(bins)
            if packed:
                for k in range(period):
                    row = (k * LANES + lane) // cw
                    offs[p, k * LANES + lane] = ((row % subs) * c + j) * stride
    return fast, prm, offs, period, subs, packed
