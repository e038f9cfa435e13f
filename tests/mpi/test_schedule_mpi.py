"""In-process MPI tests of the dynamic schedule on a real window (run by test_mpi_inprocess.py at 1-3 ranks)."""

import time

import numpy as np
import pytest
from mpi4py import MPI

from hpcdist.comm import World
from hpcdist.reduce import reduce_to_root
from hpcdist.schedule import Dynamic, Static
from hpcdist.shards import static_blocks
from hpcdist.tree import Fold


def skewed(a, b):
    """Deliberately non-associative: any change in the order of combines changes the bits."""
    return {"x": a["x"] * 1.0000001 + b["x"], "n": a["n"] + b["n"]}


def leaf(s):
    return {"x": np.array([np.sin(s + 1.0), 1.0 / (s + 3.0)]), "n": np.asarray(1, dtype=np.int64)}


def tally(claimed, shards):
    """How often each shard was claimed, summed over every rank."""
    mine = np.zeros(shards, dtype=np.int64)
    np.add.at(mine, np.asarray(claimed, dtype=np.int64), 1)
    total = np.zeros_like(mine)
    MPI.COMM_WORLD.Allreduce(mine, total, op=MPI.SUM)
    return total


def slow_last_rank(seconds_fast, seconds_slow):
    comm = MPI.COMM_WORLD
    return seconds_slow if comm.Get_rank() == comm.Get_size() - 1 and comm.Get_size() > 1 else seconds_fast


def claim_all(sched, delay=0.0, jitter=None):
    got = []
    for s in sched:
        got.append(s)
        pause = delay if jitter is None else jitter.uniform(0, delay)
        if pause:
            time.sleep(pause)
    return got


@pytest.mark.mpi
@pytest.mark.parametrize("survey_all", [16, 0])      # 0: sample victims and end with NBX, as past 16 ranks
@pytest.mark.parametrize("shards", [0, 1, 2, 7, 100, 1000])
def test_every_shard_is_claimed_exactly_once_while_ranks_race(shards, survey_all):
    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(comm.Get_rank() + 10 * shards)
    polls = []
    sched = Dynamic(range(shards), comm.Get_rank(), comm.Get_size(), comm, min_gain_s=0.0, claim_s=1e-4,
                    survey_all=survey_all, poll=lambda: polls.append(1))
    delay = slow_last_rank(0.0002, 0.001) if shards <= 100 else 0.0
    got = claim_all(sched, delay, rng)
    sched.close()
    assert np.array_equal(tally(got, shards), np.ones(shards, dtype=np.int64))
    assert sched.claims >= (1 if got else 0)


@pytest.mark.mpi
def test_a_slow_rank_has_its_tail_stolen_and_does_fewer_shards():
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    shards = 30 * size
    sched = Dynamic(range(shards), rank, size, comm, min_gain_s=0.004)
    got = claim_all(sched, slow_last_rank(0.001, 0.004))
    sched.close()
    counts = comm.allgather(len(got))
    steals = comm.allreduce(sched.steals)
    assert np.array_equal(tally(got, shards), np.ones(shards, dtype=np.int64))
    if size == 1:
        assert counts == [shards] and steals == 0
        assert got == list(range(shards))               # alone, a rank maps its block in order
    else:
        assert steals >= 1
        assert counts[-1] < shards // size < max(counts[:-1])
    first = static_blocks(range(shards), rank, size)
    assert got[0] == first[0]                           # locality: everyone starts on its own block


@pytest.mark.mpi
def test_after_a_resume_only_the_shards_still_to_do_are_claimed():
    comm = MPI.COMM_WORLD
    todo = [s for s in range(120) if s % 3 != 1]        # what a checkpoint lacked
    sched = Dynamic(todo, comm.Get_rank(), comm.Get_size(), comm, min_gain_s=0.0)
    got = claim_all(sched, slow_last_rank(0.0, 0.002))
    sched.close()
    expected = np.zeros(120, dtype=np.int64)
    expected[todo] = 1
    assert np.array_equal(tally(got, 120), expected)


@pytest.mark.mpi
@pytest.mark.parametrize("shards", [5, 64, 101])
def test_folding_stolen_shards_out_of_order_gives_the_serial_trees_bits(shards):
    world = World(MPI.COMM_WORLD)
    sched = Dynamic(range(shards), world.rank, world.size, world.comm, min_gain_s=0.0, claim_s=1e-4)
    fold = Fold(shards, skewed)
    delay = slow_last_rank(0.0001, 0.002)
    for s in sched:
        fold.add_leaf(s, leaf(s))
        time.sleep(delay)
    sched.close()
    root = reduce_to_root(world, fold)
    if world.rank == 0:
        serial = Fold(shards, skewed)
        for s in range(shards):
            serial.push_leaf(s, leaf(s))
        assert root["x"].tobytes() == serial.root()["x"].tobytes() and int(root["n"]) == shards


@pytest.mark.mpi
@pytest.mark.parametrize("kind", [Static, Dynamic])
def test_ranks_that_finish_first_keep_polling_until_the_window_is_freed(kind):
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    sched = kind(range(10), rank, size, comm)
    got = list(sched)
    polls = []
    if rank == 0:
        time.sleep(0.2)                                 # rank 0 is late (writing a checkpoint, say)
    sched.close(lambda: polls.append(1))
    assert np.array_equal(tally(got, 10), np.ones(10, dtype=np.int64))
    if rank != 0:
        assert len(polls) > 0                           # they answered the coordinator meanwhile
