"""A keyed job whose finalize gives float32 counts on rank 1 and int64 elsewhere: a bug that only
shows when the results of several owners must go into one file."""

import numpy as np
from mpi4py import MPI


def default_input(params):
    return "synthetic:rows=20000,cols=2,seed=0,dist=int"


def map_keyed(shard, ctx):
    keys, inverse = np.unique(shard[:, 0].astype(np.int64), return_inverse=True)
    return keys, {"n": np.bincount(inverse, minlength=len(keys)).astype(np.int64)}


def combine(a, b):
    return {"n": a["n"] + b["n"]}


def finalize(partial, ctx):
    n = partial["n"]
    return {"n": n.astype(np.float32) if MPI.COMM_WORLD.Get_rank() == 1 else n}
