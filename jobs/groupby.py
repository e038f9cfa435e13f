"""Group-by aggregates: for every distinct key, count, sum, mean, var, min and max of each column.

Param ``key`` names the column holding an integer-valued key (cast to int64; a NaN, infinite or
fractional key is a bad input: one line, exit 2). Every other column is a value column (V of
them, in input order). Results: ``keys`` (int64, sorted ascending) and ``count`` (int64), ``sum``,
``mean``, ``var`` (population, ddof=0), ``min``, ``max``, each shaped (nkeys, V). NaNs are left
out; a group whose column is all NaN has count 0, sum 0 and NaN for mean, var, min and max.

A keyed job (docs/keyed.md): ``map_keyed`` aggregates one shard with a numba kernel, and
``combine`` merges two partials per key (Chan et al.'s update for mean and M2, one numba pass over
the keys both hold; the kernels live in hpcdist/keyed/aggregate.py and chan.py). hpcdist folds
each key's partials over the fixed shard tree: the same bits at any rank count and schedule.
"""

import numpy as np

from hpcdist import Param, UserError
from hpcdist.keyed.aggregate import BadKey, group_stats_of
from hpcdist.keyed.chan import chan_combine

PARAMS = {"key": Param(int, 0, "column index of the integer-valued key")}
INPUT_NDIM = (2,)


def default_input(params):
    return "synthetic:rows=1000000,cols=3,seed=0,dist=int"   # integer keys (and values) in [-1000, 1000)


def check(ctx):
    """The key column must exist and leave at least one value column."""
    cols, key = ctx.cols, ctx.params["key"]
    if not 0 <= key < cols:
        raise UserError(f"param key must be a column index in [0, {cols}), got {key}")
    if cols < 2:
        raise UserError(f"groupby needs a key column and at least one value column, got {cols} column(s)")


def map_keyed(shard, ctx):
    key = ctx.params["key"]
    got = group_stats_of(shard, key)
    if isinstance(got, BadKey):
        raise UserError(f"column {key} (param key) must hold integer values: row {ctx.start + got.row} "
                        f"has {got.value!r}")
    return got


def combine(a, b):
    return chan_combine(a, b)


def finalize(partial, ctx):
    count = partial["count"]
    none = count == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(none, np.nan, partial["m2"] / np.maximum(count, 1))
    return {
        "count": count,
        "sum": partial["sum"],
        "mean": np.where(none, np.nan, partial["mean"]),
        "var": var,
        "min": np.where(none, np.nan, partial["min"]),
        "max": np.where(none, np.nan, partial["max"]),
    }
