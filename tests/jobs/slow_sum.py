"""A deliberately slow job for fault-injection tests.

Its combine is not associative (any change in the order of combines changes the bits), and it
counts how often each shard was mapped, so "exactly once" can be checked shard by shard.
"""

import time

import numpy as np

from hpcdist import Param

PARAMS = {"sleep": Param(float, 0.02, "seconds each shard takes"),
          "shards": Param(int, 0, "the run's shard count (for the exactly-once tally)")}


def default_input(params):
    return "synthetic:rows=60000,cols=2,seed=5"


def map(shard, ctx):
    time.sleep(ctx.params["sleep"])
    seen = np.zeros(max(ctx.params["shards"], ctx.index + 1), dtype=np.int64)
    seen[ctx.index] = 1
    return {"x": shard.sum(axis=0) * 1e-3 + np.sin(ctx.index), "seen": seen}


def combine(a, b):
    n = max(len(a["seen"]), len(b["seen"]))
    seen = np.zeros(n, dtype=np.int64)
    seen[: len(a["seen"])] += a["seen"]
    seen[: len(b["seen"])] += b["seen"]
    return {"x": a["x"] * 1.0000001 + b["x"], "seen": seen}


def finalize(partial, ctx):
    return {"x": partial["x"], "seen": partial["seen"]}
