"""A job bug on one shard only (shard 5: rank 1's at 2 and 3 ranks under the static schedule)."""

import numpy as np


def default_input(params):
    return "synthetic:rows=40000,cols=2,seed=1"


def map(shard, ctx):
    total = float(shard.sum())
    if ctx.index == 5:
        total = total + "1"          # the bug: a str where a number belongs
    return np.asarray(total)


def combine(a, b):
    return a + b


def finalize(partial, ctx):
    return {"sum": partial}
