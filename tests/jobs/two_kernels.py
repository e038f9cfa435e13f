"""Two passes with a different cached numba kernel in each (tests/test_warmup.py): the sum, then the spread."""

import numba
import numpy as np


@numba.njit(cache=True)
def total(x):
    s = 0.0
    for v in x.ravel():
        s += v
    return s


@numba.njit(cache=True)
def spread(x, mean):
    s = 0.0
    for v in x.ravel():
        s += (v - mean) ** 2
    return s


def default_input(params):
    return "synthetic:rows=4000,cols=2,seed=1"


def init(ctx):
    return {"phase": np.asarray(0), "mean": np.asarray(0.0)}


def map(shard, ctx):
    if int(ctx.state["phase"]) == 0:
        return {"s": np.asarray(total(shard)), "n": np.asarray(shard.size)}
    return {"s": np.asarray(spread(shard, float(ctx.state["mean"]))), "n": np.asarray(shard.size)}


def combine(a, b):
    return {"s": a["s"] + b["s"], "n": a["n"] + b["n"]}


def update(state, partial, ctx):
    if int(state["phase"]) == 1:
        return state, True
    return {"phase": np.asarray(1), "mean": partial["s"] / partial["n"]}, False


def finalize(partial, ctx):
    return {"m2": partial["s"]}
