"""A multi-pass job with a filter output: pass 1 finds the first column's mean, then the rows above
it are counted and written (/above), with the mean as result."""

import numpy as np

from hpcdist.sinks import Output

OUTPUTS = {"above": Output(rows="filter")}


def init(ctx):
    return {"mean": np.zeros(())}


def map(shard, ctx):
    return np.array([shard[:, 0].sum(), len(shard)])


def combine(a, b):
    return a + b


def update(state, partial, ctx):
    return {"mean": np.asarray(partial[0] / partial[1])}, True


def transform(shard, ctx):
    return {"above": shard[shard[:, 0] > ctx.state["mean"]]}


def finalize(partial, ctx):
    return {"mean": ctx.state["mean"], "rows": partial[1]}
