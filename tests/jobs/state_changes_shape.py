"""A multi-pass job whose update returns a longer state than init: named, never carried on."""

import numpy as np


def default_input(params):
    return "synthetic:rows=40000,cols=2,seed=3"


def init(ctx):
    return {"c": np.zeros(2)}


def map(shard, ctx):
    return shard.sum(axis=0)


def combine(a, b):
    return a + b


def update(state, partial, ctx):
    return {"c": np.zeros(len(state["c"]) + 1)}, ctx.pass_index >= 2


def finalize(partial, ctx):
    return {"sum": partial}
