"""Per-column statistics and a histogram of a 1-D or 2-D numeric dataset.

Results: count, nan_count, sum, mean, var (population, ddof=0), min, max, hist, hist_edges.
NaNs are counted in nan_count and excluded from everything else. The histogram matches
``numpy.histogram(column, bins, range=(lo, hi))`` exactly; without lo/hi the range is each column's
finite min..max (numpy's default), found in a first, cheap pass over the data.

Variance merges use Chan et al.'s pairwise update (exact count, mean and M2 per block), never
sum-of-squares, so large offsets do not cancel.
"""

import numpy as np
from numba import njit

from hpcdist import Param, UserError

PARAMS = {
    "bins": Param(int, 64, "number of equal-width histogram bins"),
    "lo": Param(float, float("nan"), "histogram lower edge (default: column minimum)"),
    "hi": Param(float, float("nan"), "histogram upper edge (default: column maximum)"),
}
INPUT_NDIM = (1, 2)
BLOCK_ROWS = 1024


def default_input(params):
    return "synthetic:rows=1000000,cols=4,seed=0,dist=normal,nan=0.001"


def check(ctx):
    p = ctx.params
    if p["bins"] < 1:
        raise UserError(f"param bins must be >= 1, got {p['bins']}")
    given = [not np.isnan(p["lo"]), not np.isnan(p["hi"])]
    if any(given) and not all(given):
        raise UserError("params lo and hi go together: give both or neither")
    if all(given) and not (np.isfinite(p["lo"]) and np.isfinite(p["hi"]) and p["lo"] < p["hi"]):
        raise UserError(f"params lo < hi must be finite, got lo={p['lo']} hi={p['hi']}")


# ---- multi-pass plan: [range pass if lo/hi not given] -> full pass -------------------------------

def init(ctx):
    cols, p = ctx.cols, ctx.params
    if np.isnan(p["lo"]):
        return {"phase": np.asarray(0), "lo": np.zeros(cols), "hi": np.ones(cols)}
    return {"phase": np.asarray(1), "lo": np.full(cols, p["lo"]), "hi": np.full(cols, p["hi"])}


def update(state, partial, ctx):
    if int(state["phase"]) == 1:
        return state, True
    lo, hi = partial["min"].copy(), partial["max"].copy()
    empty = ~(lo <= hi)                      # a column with no finite values
    lo[empty], hi[empty] = 0.0, 1.0          # numpy's range for empty data
    same = lo == hi
    lo[same] -= 0.5                          # numpy widens an empty range by 0.5 each side
    hi[same] += 0.5
    return {"phase": np.asarray(1), "lo": lo, "hi": hi}, False


def map(shard, ctx):
    x = shard.reshape(shard.shape[0], -1)
    if int(ctx.state["phase"]) == 0:
        mn, mx = _finite_range(x)
        return {"min": mn, "max": mx}
    count, nan_count, total, mean, m2, mn, mx, hist = _shard_stats(
        x, ctx.state["lo"], ctx.state["hi"], ctx.params["bins"])
    return {"count": count, "nan_count": nan_count, "sum": total, "mean": mean, "m2": m2,
            "min": mn, "max": mx, "hist": hist}


def combine(a, b):
    if "count" not in a:
        return {"min": np.fmin(a["min"], b["min"]), "max": np.fmax(a["max"], b["max"])}
    n = a["count"] + b["count"]
    share = np.divide(b["count"], n, out=np.zeros(n.shape), where=n > 0)
    delta = b["mean"] - a["mean"]
    return {
        "count": n,
        "nan_count": a["nan_count"] + b["nan_count"],
        "sum": a["sum"] + b["sum"],
        "mean": a["mean"] + delta * share,
        "m2": a["m2"] + b["m2"] + delta * delta * (a["count"] * share),
        "min": np.fmin(a["min"], b["min"]),
        "max": np.fmax(a["max"], b["max"]),
        "hist": a["hist"] + b["hist"],
    }


def finalize(partial, ctx):
    count = partial["count"]
    none = count == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(none, np.nan, partial["m2"] / count)
    edges = np.stack([np.linspace(lo, hi, ctx.params["bins"] + 1)
                      for lo, hi in zip(ctx.state["lo"], ctx.state["hi"])])
    out = {
        "count": count,
        "nan_count": partial["nan_count"],
        "sum": partial["sum"],
        "mean": np.where(none, np.nan, partial["mean"]),
        "var": var,
        "min": np.where(none, np.nan, partial["min"]),
        "max": np.where(none, np.nan, partial["max"]),
        "hist": partial["hist"],
        "hist_edges": edges,
    }
    if len(ctx.row_shape) == 0:   # 1-D input: one column, reported without the column axis
        out = {k: v[0] for k, v in out.items()}
    return out


# ---- kernels ------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _finite_range(x):
    n, c = x.shape
    mn = np.full(c, np.inf)
    mx = np.full(c, -np.inf)
    for i in range(n):
        for j in range(c):
            v = float(x[i, j])
            if v - v == 0.0:            # finite (false for NaN and +-inf)
                if v < mn[j]:
                    mn[j] = v
                if v > mx[j]:
                    mx[j] = v
    return mn, mx


@njit(cache=True, nogil=True, boundscheck=False)
def _bin(v, lo, hi, step, scale, bins):
    """numpy.histogram's bin of v (edges lo + t*step, last edge hi), or -1 when outside."""
    if not (v >= lo and v <= hi):
        return -1
    t = int((v - lo) * scale)
    if t > bins - 1:
        t = bins - 1
    if v < t * step + lo:
        t -= 1
    elif t < bins - 1:
        upper = hi if t + 1 == bins else (t + 1) * step + lo
        if v >= upper:
            t += 1
    return t


@njit(cache=True, nogil=True, boundscheck=False)
def _shard_stats(x, lo, hi, bins):
    """One fused pass per block of rows: count/sum/min/max, then M2 about the block mean and the
    histogram while the block is in cache; blocks merge into the shard with Chan's update."""
    n, c = x.shape
    count = np.zeros(c, np.int64)
    nan_count = np.zeros(c, np.int64)
    total = np.zeros(c)
    mean = np.zeros(c)
    m2 = np.zeros(c)
    mn = np.full(c, np.inf)
    mx = np.full(c, -np.inf)
    hist = np.zeros((c, bins), np.int64)
    for b0 in range(0, n, BLOCK_ROWS):
        b1 = min(b0 + BLOCK_ROWS, n)
        for j in range(c):
            step = (hi[j] - lo[j]) / bins
            scale = bins / (hi[j] - lo[j])
            s0 = 0.0
            s1 = 0.0
            k = 0
            lo_j = mn[j]
            hi_j = mx[j]
            for i in range(b0, b1):
                v = float(x[i, j])
                if v == v:
                    if (i & 1) == 0:
                        s0 += v
                    else:
                        s1 += v
                    k += 1
                    if v < lo_j:
                        lo_j = v
                    if v > hi_j:
                        hi_j = v
            mn[j] = lo_j
            mx[j] = hi_j
            nan_count[j] += (b1 - b0) - k
            if k == 0:
                continue
            block_sum = s0 + s1
            block_mean = block_sum / k
            q = 0.0
            for i in range(b0, b1):
                v = float(x[i, j])
                if v == v:
                    d = v - block_mean
                    q += d * d
                    t = _bin(v, lo[j], hi[j], step, scale, bins)
                    if t >= 0:
                        hist[j, t] += 1
            na = count[j]
            nt = na + k
            share = k / nt
            delta = block_mean - mean[j]
            mean[j] += delta * share
            m2[j] += q + delta * delta * (na * share)
            count[j] = nt
            total[j] += block_sum
    return count, nan_count, total, mean, m2, mn, mx, hist
