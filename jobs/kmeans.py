"""k-means (Lloyd's algorithm) over the rows of a 1-D or 2-D dataset: a multi-pass job.

Initialisation is k-means++ on a sample of rows chosen by the seed alone, so it does not depend on
the rank count; each pass assigns every row to its nearest centroid and the update moves centroids
to their clusters' means. Results: centroids, counts and inertia (sum of squared distances) of the
last pass's assignment, and iterations.
"""

import os

import numpy as np
from numba import njit

from hpcdist import Param, UserError

PARAMS = {
    "k": Param(int, 8, "number of clusters"),
    "iters": Param(int, 20, "maximum number of passes"),
    "tol": Param(float, 1e-4, "stop when no centroid moves more than this (0: run all passes)"),
    "seed": Param(int, 0, "seed of the initialisation sample and k-means++"),
    "sample": Param(int, 20_000, "rows sampled for k-means++ initialisation"),
}
INPUT_NDIM = (1, 2)


def default_input(params):
    return "synthetic:rows=500000,cols=3,seed=0,dist=normal"


def check(ctx):
    """k and sample size the start's arrays: checked against the data and this machine first."""
    p = ctx.params
    if not 1 <= p["k"] <= min(ctx.rows, p["sample"]):
        raise UserError(f"param k must be between 1 and min(rows, sample) = "
                        f"{min(ctx.rows, p['sample'])}, got {p['k']}")
    rows = min(p["sample"], ctx.rows)        # k-means++ runs on rank 0 over these rows
    need = rows * (3 * ctx.cols * 8 + 16) + p["k"] * ctx.cols * 8
    have = _memory_bytes()
    if need > have:
        raise UserError(f"param sample={p['sample']:,} needs about {need / 1e9:,.1f} GB for the "
                        f"k-means++ start; this machine has {have / 1e9:,.1f} GB")
    if p["iters"] < 1:
        raise UserError(f"param iters must be >= 1, got {p['iters']}")
    if not p["tol"] >= 0:
        raise UserError(f"param tol must be >= 0, got {p['tol']}")


def init(ctx):
    p = ctx.params
    sample = ctx.sample(p["sample"], p["seed"]).reshape(-1, ctx.cols).astype(np.float64)
    sample = sample[np.isfinite(sample).all(axis=1)]
    if len(sample) < p["k"]:
        raise UserError(f"k-means: only {len(sample)} finite rows in the sample, need k={p['k']}")
    return {"centroids": _kmeans_pp(sample, p["k"], p["seed"])}


def map(shard, ctx):
    x = shard.reshape(shard.shape[0], -1)
    sums, counts, inertia = _assign(x, ctx.state["centroids"])
    return {"sums": sums, "counts": counts, "inertia": np.asarray(inertia)}


def combine(a, b):
    return {"sums": a["sums"] + b["sums"], "counts": a["counts"] + b["counts"],
            "inertia": a["inertia"] + b["inertia"]}


def update(state, partial, ctx):
    old = state["centroids"]
    counts = partial["counts"][:, None]
    new = np.where(counts > 0, partial["sums"] / np.maximum(counts, 1), old)  # empty: stay put
    shift = np.sqrt(((new - old) ** 2).sum(axis=1)).max()
    done = ctx.pass_index + 1 >= ctx.params["iters"] or (ctx.params["tol"] > 0 and shift <= ctx.params["tol"])
    return {"centroids": new}, done


def finalize(partial, ctx):
    return {"centroids": ctx.state["centroids"], "counts": partial["counts"],
            "inertia": partial["inertia"], "iterations": np.asarray(ctx.pass_index + 1)}


def _kmeans_pp(sample, k, seed):
    """k-means++ seeding: each next centre drawn with probability proportional to D(x)^2."""
    rng = np.random.Generator(np.random.Philox(key=seed + 1))
    centres = [sample[rng.integers(len(sample))]]
    d2 = ((sample - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = d2.sum()
        i = rng.integers(len(sample)) if total == 0 else \
            min(int(np.searchsorted(np.cumsum(d2), rng.random() * total, side="right")), len(sample) - 1)
        centres.append(sample[i])
        d2 = np.minimum(d2, ((sample - sample[i]) ** 2).sum(axis=1))
    return np.array(centres)


@njit(cache=True, nogil=True)
def _assign(x, centroids):
    n, d = x.shape
    k = centroids.shape[0]
    sums = np.zeros((k, d))
    counts = np.zeros(k, np.int64)
    inertia = 0.0
    for i in range(n):
        best, best_d = -1, np.inf
        for c in range(k):
            dist = 0.0
            for j in range(d):
                diff = float(x[i, j]) - centroids[c, j]
                dist += diff * diff
            if dist < best_d:
                best, best_d = c, dist
        if best < 0:
            continue                      # a row with NaN belongs to no cluster
        counts[best] += 1
        inertia += best_d
        for j in range(d):
            sums[best, j] += x[i, j]
    return sums, counts, inertia


def _memory_bytes():
    """This machine's physical memory (Linux); no limit where it cannot be asked."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return float("inf")
