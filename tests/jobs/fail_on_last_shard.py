"""A job whose kernel fails on the last shard only: that shard's rank must take every rank down."""

import numpy as np


def default_input(params):
    return "synthetic:rows=40000,cols=2,seed=1"


def map(shard, ctx):
    if ctx.stop == ctx.rows:
        raise ValueError(f"kernel failed on shard {ctx.index}")
    return np.asarray(shard.sum())


def combine(a, b):
    return a + b


def finalize(partial, ctx):
    return {"sum": partial}
