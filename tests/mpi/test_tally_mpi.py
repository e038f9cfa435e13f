"""End-of-pass messages in a tree (hpcdist.tally, hpcdist.control): valid at every communicator size."""

import numpy as np
import pytest
from mpi4py import MPI

from hpcdist.comm import World
from hpcdist.control import Control
from hpcdist.signals import StopFlag
from hpcdist.tally import broadcast
from hpcdist.timings import RankTimings


def _timings(rank):
    return RankTimings(shards=rank + 1, compile_s=0.5 * rank, read_s=1.0 / (rank + 3), compute_s=2.0 ** -rank,
                       reduce_s=0.25, idle_s=rank / 7, claims=2 * rank, steals=rank % 2, schedule="dynamic")


@pytest.mark.mpi
def test_rank_0_gets_every_rank_s_timings_in_rank_order_bit_for_bit():
    world = World(MPI.COMM_WORLD)
    control = Control(world, StopFlag())
    everyone = control.end_pass(_timings(world.rank))
    if world.rank != 0:
        assert everyone is None
        control.receive_outcome()
        return
    assert everyone == [_timings(r) for r in range(world.size)]
    assert control.progress().shards == [0] * world.size       # no shard was mapped in this test
    control.share_outcome(np.frombuffer(b"done", dtype=np.uint8).copy())


@pytest.mark.mpi
@pytest.mark.parametrize("nbytes", [0, 1, 70_000])
def test_every_rank_gets_rank_0_s_outcome(nbytes):
    comm = MPI.COMM_WORLD
    payload = (np.arange(nbytes) % 251).astype(np.uint8) if comm.Get_rank() == 0 else None
    got = broadcast(comm, payload, None)
    assert got.dtype == np.uint8 and got.tobytes() == ((np.arange(nbytes) % 251).astype(np.uint8)).tobytes()
