"""The k largest values of a 1-D dataset with their global row indices.

Ties are broken by the smaller row index, so the answer is unique and the same at any rank count.
NaNs are never among the largest values. Results: values (descending), rows.
A partial keeps at most k values, fewer on a shard with fewer rows (VARIABLE_LENGTH).
"""

import os

import numpy as np
from numba import njit

from hpcdist import Param, UserError

PARAMS = {"k": Param(int, 10, "how many of the largest values to keep")}
INPUT_NDIM = (1,)
VARIABLE_LENGTH = ("values", "rows")   # at most k, fewer for a short shard or one with NaNs


def default_input(params):
    return "synthetic:rows=2000000,cols=1,seed=0,dist=int"


def check(ctx):
    """k sizes every partial: checked against the data and this machine before any work."""
    k = ctx.params["k"]
    if not 1 <= k <= ctx.rows:
        raise UserError(f"param k must be between 1 and the number of rows ({ctx.rows:,}), got {k:,}")
    need = 4 * k * (ctx.dtype.itemsize + 8)    # two partials merged: values, rows and the sort order
    have = _memory_bytes()
    if need > have:
        raise UserError(f"param k={k:,} needs about {need / 1e9:,.1f} GB to merge two partials; "
                        f"this machine has {have / 1e9:,.1f} GB")


def map(shard, ctx):
    values, rows = _top(shard, ctx.start, ctx.params["k"])
    return {"values": values, "rows": rows, "k": np.asarray(ctx.params["k"], dtype=np.int64)}


def combine(a, b):
    values = np.concatenate([a["values"], b["values"]])
    rows = np.concatenate([a["rows"], b["rows"]])
    best = np.lexsort((-rows, values))[::-1][: int(a["k"])]   # value descending, then row ascending
    return {"values": values[best], "rows": rows[best], "k": a["k"]}


def finalize(partial, ctx):
    return {"values": partial["values"], "rows": partial["rows"]}


@njit(cache=True, nogil=True)
def _top(x, row0, k):
    """Keep a sorted buffer of the best k (value desc, row asc); one compare per value usually."""
    k = min(k, x.shape[0])                 # a shard never needs more room than it has rows
    vals = np.empty(k, x.dtype)
    rows = np.empty(k, np.int64)
    m = 0
    for i in range(x.shape[0]):
        v = x[i]
        if v != v:
            continue
        if m == k and not v > vals[m - 1]:
            continue                       # not better than the worst kept (ties: earlier row wins)
        j = m if m < k else k - 1         # the free slot, or the worst one (dropped)
        while j > 0 and v > vals[j - 1]:
            vals[j] = vals[j - 1]
            rows[j] = rows[j - 1]
            j -= 1
        vals[j] = v
        rows[j] = row0 + i
        if m < k:
            m += 1
    return vals[:m].copy(), rows[:m].copy()


def _memory_bytes():
    """This machine's physical memory (Linux); no limit where it cannot be asked."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return float("inf")
