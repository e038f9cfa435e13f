"""A job whose kernel is called with an argument numba cannot type: numba's message must reach the user."""

import numpy as np
from numba import njit


def default_input(params):
    return "synthetic:rows=4000,cols=1,seed=1"


@njit(cache=False)
def _total(x, offset):
    return x.sum() + offset


def map(shard, ctx):
    return np.asarray(_total(shard, "one"))


def combine(a, b):
    return a + b


def finalize(partial, ctx):
    return {"sum": partial}
