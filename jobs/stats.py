"""Per-column statistics and a histogram of a 1-D or 2-D numeric dataset.

Results: count, nan_count, sum, mean, var (population, ddof=0), min, max, hist, hist_edges.
NaNs are counted in nan_count and excluded from everything else. The histogram matches
``numpy.histogram(column, bins, range=(lo, hi))`` exactly; without lo/hi the range is each column's
finite min..max (numpy's default), found in a first, cheap pass over the data.

Each shard is one call into :mod:`hpcdist.kernels` (exact SIMD: the same bits on every CPU, see
docs/kernels.md). Partials merge with Chan et al.'s pairwise update (exact count, mean and M2),
never a sum of squares, so large offsets do not cancel. Input values may be bool, integers or
floats (float16, float32, float64); they are binned and summed as their exact float64 values.
"""

import numpy as np

from hpcdist import Param, UserError, kernels

PARAMS = {
    "bins": Param(int, 64, "number of equal-width histogram bins"),
    "lo": Param(float, float("nan"), "histogram lower edge (default: column minimum)"),
    "hi": Param(float, float("nan"), "histogram upper edge (default: column maximum)"),
}
INPUT_NDIM = (1, 2)
MAX_HIST_BYTES = 2**27      # one partial's histograms (cols * bins * 8 bytes); a rank holds a few


def default_input(params):
    return "synthetic:rows=1000000,cols=4,seed=0,dist=normal,nan=0.001"


def check(ctx):
    """Refuse params that do not fit the data before any work (rank 0, once)."""
    p, cols = ctx.params, max(1, ctx.cols)
    if p["bins"] < 1:
        raise UserError(f"param bins must be >= 1, got {p['bins']}")
    most = MAX_HIST_BYTES // (8 * cols)
    if p["bins"] > most:
        raise UserError(f"param bins must be <= {most} for {cols} column(s) (histograms of at most "
                        f"{MAX_HIST_BYTES >> 20} MiB: cols * bins * 8 bytes), got {p['bins']}")
    given = [not np.isnan(p["lo"]), not np.isnan(p["hi"])]
    if any(given) and not all(given):
        raise UserError("params lo and hi go together: give both or neither")
    if all(given) and not (np.isfinite(p["lo"]) and np.isfinite(p["hi"]) and p["lo"] < p["hi"]):
        raise UserError(f"params lo < hi must be finite, got lo={p['lo']} hi={p['hi']}")


# ---- two passes: [each column's range, if lo/hi are not given] -> the statistics ---------------

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
    state = ctx.state
    if int(state["phase"]) == 0:
        return kernels.finite_range(shard)._asdict()                  # {"min": ..., "max": ...}
    return kernels.column_stats(shard, state["lo"], state["hi"], ctx.params["bins"])._asdict()


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
