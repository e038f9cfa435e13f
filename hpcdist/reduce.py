"""The few MPI calls that move partials: frontiers up a binomial tree of ranks, results back down.

Each rank sends its folded frontier (O(log S) nodes) once; rank 0 receives O(log P) messages and
ends with the tree's root. The order of floating-point combines is the tree's (:mod:`hpcdist.tree`),
not the order in which messages arrive, so the result is the same at any rank count.
"""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

from hpcdist.comm import Poll, World, recv_bytes, wait
from hpcdist.partials import Partial, decode, encode
from hpcdist.tree import Fold, describe

_TAG_FRONTIER = 7101


def reduce_to_root(world: World, fold: Fold, poll: Poll | None = None) -> Partial | None:
    """Fold every rank's nodes into rank 0; returns the root there and None elsewhere.

    ``poll`` runs while a rank waits, so signals and checkpoint traffic are served meanwhile.
    With ``fold.check``, a node from another rank must have the layout of this rank's partials:
    one rank's map may differ from another's without either rank seeing two layouts itself.
    """
    comm, rank, size = world.comm, world.rank, world.size
    step = 1
    while step < size:
        if rank % (2 * step) == step:
            buf = encode(fold.nodes)
            wait(comm.Isend([buf, MPI.BYTE], dest=rank - step, tag=_TAG_FRONTIER), poll)
            break
        if rank + step < size:
            nodes = decode(recv_bytes(comm, rank + step, _TAG_FRONTIER, poll))
            if fold.check is not None:
                for level, index, partial in nodes:
                    fold.check.check(partial, describe(level, index, fold.shards), f"rank {rank + step} sent")
            fold.merge(nodes)
        step *= 2
    return fold.root() if rank == 0 else None


def broadcast(world: World, value: Partial | None) -> Partial:
    """Rank 0's partial (e.g. a multi-pass state) on every rank, as fixed-layout buffers."""
    if world.size == 1:
        assert value is not None
        return value
    comm = world.comm
    buf = encode([(0, 0, value)]) if world.rank == 0 else None
    n = comm.bcast(len(buf) if buf is not None else 0, root=0)
    if buf is None:
        buf = np.empty(n, dtype=np.uint8)
    comm.Bcast([buf, MPI.BYTE], root=0)
    return decode(buf)[0][2]
