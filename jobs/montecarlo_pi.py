"""Monte Carlo estimate of pi: compute-bound, no input data.

Sample i's point comes from a counter-based generator keyed by (seed, i) alone, so every sample is
the same whichever shard or rank draws it, and the answer has the same bits at any rank count.
"""

import numpy as np
from numba import njit

from hpcdist import Param, UserError

PARAMS = {
    "samples": Param(int, 20_000_000, "number of random points"),
    "seed": Param(int, 0, "random seed"),
}


def default_input(params):
    return f"range:{params['samples']}"


def check(ctx):
    if ctx.params["samples"] < 1:
        raise UserError(f"param samples must be >= 1, got {ctx.params['samples']}")
    if ctx.params["seed"] < 0:
        raise UserError(f"param seed must be >= 0, got {ctx.params['seed']}")


def map(shard, ctx):
    hits = _hits(np.uint64(ctx.params["seed"]), ctx.start, ctx.stop)
    return {"hits": np.asarray(hits, dtype=np.int64),
            "samples": np.asarray(ctx.stop - ctx.start, dtype=np.int64)}


def combine(a, b):
    return {"hits": a["hits"] + b["hits"], "samples": a["samples"] + b["samples"]}


def finalize(partial, ctx):
    hits, samples = partial["hits"], partial["samples"]
    return {"pi": np.asarray(4.0 * hits / samples), "hits": hits, "samples": samples}


@njit(cache=True, nogil=True)
def _mix(z):
    """SplitMix64's finaliser: a bijective 64-bit hash with good avalanche."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def _hits(seed, start, stop):
    key = _mix(seed * np.uint64(0x9E3779B97F4A7C15) + np.uint64(1))
    unit = 1.0 / 9007199254740992.0  # 2**-53
    hits = 0
    for i in range(start, stop):
        z = _mix(key ^ (np.uint64(i) * np.uint64(2)))
        w = _mix(key ^ (np.uint64(i) * np.uint64(2) + np.uint64(1)))
        x = float(z >> np.uint64(11)) * unit
        y = float(w >> np.uint64(11)) * unit
        if x * x + y * y < 1.0:
            hits += 1
    return hits
