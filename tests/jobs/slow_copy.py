"""A slow writing job for kill tests: a 1:1 copy scaled by 2 (/y) and the rows whose first value is
positive (/pos, a filter), with a reduction of the rows it wrote (result ``total``)."""

import time

import numpy as np

from hpcdist import Param
from hpcdist.sinks import Output

PARAMS = {"sleep": Param(float, 0.02, "seconds each shard takes in transform")}
OUTPUTS = {"y": Output(rows="same"), "pos": Output(rows="filter")}


def default_input(params):
    return "synthetic:rows=20000,cols=3,seed=9"


def transform(shard, ctx):
    time.sleep(ctx.params["sleep"])
    return {"y": shard * 2.0, "pos": shard[shard[:, 0] > 0]}


def map(shard, ctx):
    return shard.sum(axis=0)


def combine(a, b):
    return a + b


def finalize(partial, ctx):
    return {"total": partial}
