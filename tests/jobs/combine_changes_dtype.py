"""A combine that returns float32 sums where map gave float64: the tree's first combine is named."""

import numpy as np


def default_input(params):
    return "synthetic:rows=40000,cols=2,seed=3"


def map(shard, ctx):
    return {"sum": shard.sum(axis=0)}


def combine(a, b):
    return {"sum": (a["sum"] + b["sum"]).astype(np.float32)}


def finalize(partial, ctx):
    return partial
