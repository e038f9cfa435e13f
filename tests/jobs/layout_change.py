"""A map (or combine) whose partial changes layout: each mode is a bug hpcdist must name, not broadcast."""

import numpy as np

from hpcdist import Param

PARAMS = {
    "mode": Param(str, "scalar", "scalar | dtype | missing | extra | block"),
    "shard": Param(int, 8, "the shard whose partial differs (block: this shard and every later one)"),
}


def default_input(params):
    return "synthetic:rows=40000,cols=2,seed=3"


def map(shard, ctx):
    out = {"sum": shard.sum(axis=0), "n": np.asarray(len(shard))}
    mode, bad = ctx.params["mode"], ctx.params["shard"]
    if ctx.index == bad or (mode == "block" and ctx.index >= bad):
        if mode in ("scalar", "block"):
            out["sum"] = np.asarray(shard.sum())
        elif mode == "dtype":
            out["sum"] = out["sum"].astype(np.float32)
        elif mode == "missing":
            del out["n"]
        elif mode == "extra":
            out["extra"] = np.zeros(1)
    return out


def combine(a, b):
    return {"sum": a["sum"] + b["sum"], "n": a["n"] + b["n"]}


def finalize(partial, ctx):
    return {"sum": partial["sum"], "n": partial["n"]}
