"""Per-column z-score: writes /x = (x - mean) / std, float64, the input's shape.

NaNs are excluded from mean and std (std with ddof 0, as ``stats.py``'s var) and stay NaN. Two
passes: the first reduces each column's count, mean and M2 (the exact kernels of
:mod:`hpcdist.kernels`, merged with Chan et al.'s update, as ``stats.py`` does: the same bits);
the second writes the rows. Results: ``mean`` and ``std`` per column.
"""

import numpy as np

from hpcdist import kernels
from hpcdist.sinks import Output

INPUT_NDIM = (1, 2)
OUTPUTS = {"x": Output(rows="same", dtype=np.float64)}


def default_input(params):
    return "synthetic:rows=100000,cols=4,seed=0,dist=normal,nan=0.001"


def init(ctx):
    return {"mean": np.zeros(ctx.cols), "std": np.ones(ctx.cols)}


def map(shard, ctx):
    cols = ctx.cols
    s = kernels.column_stats(shard, np.zeros(cols), np.ones(cols), 1)
    return {"count": s.count, "mean": s.mean, "m2": s.m2}


def combine(a, b):
    n = a["count"] + b["count"]
    share = np.divide(b["count"], n, out=np.zeros(n.shape), where=n > 0)
    delta = b["mean"] - a["mean"]
    return {"count": n, "mean": a["mean"] + delta * share,
            "m2": a["m2"] + b["m2"] + delta * delta * (a["count"] * share)}


def update(state, partial, ctx):
    count = partial["count"]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count == 0, np.nan, partial["mean"])
        std = np.sqrt(np.where(count == 0, np.nan, partial["m2"] / count))
    return {"mean": mean, "std": std}, True


def transform(shard, ctx, out):
    """``out["x"]``: hpcdist's reused buffer for this shard's rows (absent on the first call)."""
    mean, std = ctx.state["mean"], ctx.state["std"]
    if shard.ndim == 1:
        mean, std = mean[0], std[0]
    x = out.get("x")
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.subtract(shard, mean, out=x, dtype=np.float64)
        return {"x": np.divide(x, std, out=x)}


def finalize(partial, ctx):
    return {"mean": ctx.state["mean"], "std": ctx.state["std"]}
