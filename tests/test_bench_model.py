"""benchmarks/MODEL.md, checked: the planner and the reduction at P = 10,000 simulated ranks, no MPI.

The reduction is hpcdist's own ``reduce_to_root`` run once per simulated rank over a fake
communicator (a mailbox). Ranks run from the highest to 0: in the binomial tree a rank only
receives from higher ranks, which have all finished by then, so one thread plays every rank.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from mpi4py import MPI

from hpcdist.tree import outermost
from hpcdist.comm import World
from hpcdist.partials import encode
from hpcdist.reduce import reduce_to_root
from hpcdist.shards import plan_shards, static_blocks
from hpcdist.tree import Fold, height

pytestmark = pytest.mark.timeout(120)


class _Done:
    def Test(self):
        return True

    def Wait(self):
        return None


class MailboxComm:
    """The four calls reduce_to_root / recv_bytes make, over a dict; counts messages and bytes."""

    def __init__(self, rank, size, box, stats):
        self.rank, self.size, self.box, self.stats = rank, size, box, stats

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Isend(self, msg, dest, tag):
        buf = np.array(msg[0], copy=True)
        self.box[(dest, self.rank, tag)] = buf
        self.stats["sent"][self.rank] += 1
        self.stats["received"][dest] += 1
        self.stats["bytes"][self.rank] += buf.nbytes
        return _Done()

    def Iprobe(self, source, tag, status):
        buf = self.box.get((self.rank, source, tag))
        if buf is None:
            return False
        status.Set_source(source)
        status.Set_elements(MPI.BYTE, buf.nbytes)
        return True

    def Probe(self, source, tag, status):
        if not self.Iprobe(source, tag, status):
            raise AssertionError(f"rank {self.rank} would wait forever for rank {source}")

    def Recv(self, msg, source, tag):
        msg[0][:] = self.box.pop((self.rank, source, tag))


def leaf(shard):
    # a float that rounds differently in every order, and an exact count
    return {"x": np.asarray(1.0 / (shard + 3) + 1e-3 * math.sin(shard)), "n": np.asarray(1, np.int64)}


def combine(a, b):
    return {"x": a["x"] + b["x"], "n": a["n"] + b["n"]}


def simulate(ranks: int, shards: int):
    """Every rank folds its static block and runs the real reduce_to_root; returns (root, stats,
    frontier sizes, frontier bytes per rank)."""
    box, stats = {}, {"sent": [0] * ranks, "received": [0] * ranks, "bytes": [0] * ranks}
    frontiers, root = [0] * ranks, None
    snapshots = []
    for r in reversed(range(ranks)):
        fold = Fold(shards, combine)
        for s in static_blocks(range(shards), r, ranks):
            fold.push_leaf(s, leaf(s))
        frontiers[r] = len(fold.nodes)
        snapshots.extend(fold.nodes)          # what rank r would send rank 0 as a checkpoint snapshot
        out = reduce_to_root(World(MailboxComm(r, ranks, box, stats)), fold)
        if r == 0:
            root = out
    assert not box, "undelivered messages"
    return root, stats, frontiers, snapshots


@pytest.fixture(scope="module")
def sequential():
    shards = 100_000
    fold = Fold(shards, combine)
    for s in range(shards):
        fold.push_leaf(s, leaf(s))
    return shards, fold.root()


@pytest.mark.parametrize("ranks", [1_000, 10_000])
def test_reduction_at_thousands_of_simulated_ranks_is_log_p_messages_and_the_same_bits(ranks, sequential):
    shards, want = sequential
    t = time.perf_counter()
    root, stats, frontiers, snapshots = simulate(ranks, shards)
    seconds = time.perf_counter() - t
    # the same bits as one rank folding every shard
    assert root["x"].tobytes() == want["x"].tobytes() and int(root["n"]) == shards
    # rank 0 receives ceil(log2 P) messages; every other rank sends exactly one; P - 1 in all
    assert stats["received"][0] == math.ceil(math.log2(ranks))
    assert max(stats["received"]) == math.ceil(math.log2(ranks))
    assert stats["sent"][0] == 0 and all(n == 1 for n in stats["sent"][1:])
    assert sum(stats["sent"]) == ranks - 1
    # a frontier is O(log S) nodes, so each message is O(log S) partials, not O(S) or O(P)
    h = height(shards)
    assert max(frontiers) <= 2 * h
    leaf_bytes = encode([(0, 0, leaf(0))]).nbytes
    assert max(stats["bytes"]) <= 2 * h * leaf_bytes * 3
    # checkpoint collection at rank 0: the union of every rank's snapshot, O(P log(S/P)) nodes
    t = time.perf_counter()
    kept = outermost(snapshots)
    outermost_s = time.perf_counter() - t
    per_rank = 2 * math.ceil(math.log2(shards / ranks + 1)) + 2
    assert len(kept) == len(snapshots) <= ranks * per_rank
    assert sum(b - a for a, b in ((ix << lv, min((ix + 1) << lv, shards)) for lv, ix, _ in kept)) == shards
    print(f"P={ranks}: reduce {seconds:.2f} s simulated, rank 0 got {stats['received'][0]} messages, "
          f"largest {max(stats['bytes'])} B; checkpoint union {len(kept)} nodes, outermost {outermost_s:.3f} s")


def test_the_plan_is_o1_per_rank_and_blocks_are_even_at_10000_ranks():
    ranks = 10_000
    plan = plan_shards(rows=10**12, row_bytes=32)          # 32 TB of 4-column float64
    assert plan.shard_rows * 32 <= 4 << 20 and plan.shards == -(-10**12 // plan.shard_rows)
    t = time.perf_counter()
    sizes = [len(plan.block(r, ranks)) for r in range(ranks)]
    assert time.perf_counter() - t < 1.0                       # O(1) per rank: no list of shards
    assert sum(sizes) == plan.shards and max(sizes) - min(sizes) <= 1
    firsts = [plan.block(r, ranks).start for r in range(ranks)]
    assert firsts == sorted(firsts) and firsts[0] == 0          # contiguous, in rank order
    # the plan does not depend on the rank count (what gives the same bits at any size)
    assert plan_shards(rows=10**12, row_bytes=32) == plan
