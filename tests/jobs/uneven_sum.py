"""A job with one slow rank, for the dynamic schedule's tests and benchmark.

Every shard takes ``work`` seconds (sleeping, or spinning the CPU with ``mode=spin``), ``factor``
times longer on rank ``slow_rank`` (-1: nobody is slow): a grid node that is slower or shared.
The result does not depend on who mapped what or how slowly. Like slow_sum.py, its combine is not
associative (any change in the order of combines changes the bits) and it counts how often each
shard was mapped, so "exactly once" is checked shard by shard.
"""

import time

import numpy as np

from hpcdist import Param
from hpcdist.errors import UserError

PARAMS = {"work": Param(float, 0.01, "seconds per shard on a normal rank"),
          "slow_rank": Param(int, -1, "the rank that is slow (-1: none)"),
          "factor": Param(float, 4.0, "how many times slower that rank is"),
          "mode": Param(str, "sleep", "sleep | spin"),
          "shards": Param(int, 0, "the run's shard count (for the exactly-once tally)")}


def default_input(params):
    return "synthetic:rows=60000,cols=2,seed=5"


def check(ctx):
    if ctx.params["mode"] not in ("sleep", "spin"):
        raise UserError(f"mode must be sleep or spin, got {ctx.params['mode']!r}")
    if ctx.params["work"] < 0 or ctx.params["factor"] <= 0:
        raise UserError("work must be >= 0 and factor > 0")


def _rank():
    from mpi4py import MPI
    return MPI.COMM_WORLD.Get_rank()


def map(shard, ctx):
    p = ctx.params
    seconds = p["work"] * (p["factor"] if _rank() == p["slow_rank"] else 1.0)
    if p["mode"] == "sleep":
        time.sleep(seconds)
    else:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
    seen = np.zeros(max(p["shards"], ctx.index + 1), dtype=np.int64)
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
