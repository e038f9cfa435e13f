"""In-process MPI tests: valid at every communicator size (run by test_mpi_inprocess.py)."""

import numpy as np
import pytest
from mpi4py import MPI

from hpcdist import UserError
from hpcdist.comm import World
from hpcdist.reduce import broadcast, reduce_to_root
from hpcdist.shards import ShardPlan
from hpcdist.tree import Fold


def skewed(a, b):
    """Deliberately non-associative: any change in the order of combines changes the bits."""
    return {"x": a["x"] * 1.0000001 + b["x"], "n": a["n"] + b["n"]}


def leaf(s):
    return {"x": np.array([np.sin(s + 1.0), 1.0 / (s + 3.0)]), "n": np.asarray(1, dtype=np.int64)}


def serial_root(shards):
    fold = Fold(shards, skewed)
    for s in range(shards):
        fold.push_leaf(s, leaf(s))
    return fold.root()


@pytest.mark.mpi
@pytest.mark.parametrize("shards", [1, 2, 3, 5, 17, 64, 100])
def test_reduce_over_ranks_equals_the_serial_tree(shards):
    world = World(MPI.COMM_WORLD)
    plan = ShardPlan(rows=shards, shard_rows=1)
    fold = Fold(shards, skewed)
    for s in plan.block(world.rank, world.size):
        fold.push_leaf(s, leaf(s))
    root = reduce_to_root(world, fold)
    if world.rank == 0:
        expected = serial_root(shards)
        assert root["x"].tobytes() == expected["x"].tobytes()
        assert int(root["n"]) == shards
    else:
        assert root is None


@pytest.mark.mpi
def test_broadcast_gives_every_rank_rank_0s_arrays():
    world = World(MPI.COMM_WORLD)
    value = {"c": np.arange(6.0).reshape(2, 3) / 7, "done": np.asarray(True)} if world.rank == 0 else None
    got = broadcast(world, value)
    assert got["c"].tobytes() == (np.arange(6.0).reshape(2, 3) / 7).tobytes() and bool(got["done"])


@pytest.mark.mpi
def test_agree_gives_every_rank_the_same_error():
    world = World(MPI.COMM_WORLD)

    def decide():
        raise UserError("bad input x")

    with pytest.raises(UserError, match="bad input x") as info:
        world.agree(decide)
    assert info.value.agreed
    assert world.agree(lambda: 41 + 1) == 42
