"""The run's own messages travel in a tree: rank 0 handles O(log P) messages per checkpoint round,
per progress round and per stop, at P = 1,000 simulated ranks (no MPI).

Every simulated rank runs hpcdist's real :class:`hpcdist.control.Control` over a mailbox
communicator that counts what each rank sends and receives.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict

import numpy as np
import pytest
from mpi4py import MPI

from hpcdist import ctltree
from hpcdist.comm import World
from hpcdist.control import Cadence, Control, Interrupted
from hpcdist.shards import static_blocks
from hpcdist.signals import StopFlag
from hpcdist.timings import RankTimings
from hpcdist.tree import Fold, count_under, outermost

pytestmark = pytest.mark.timeout(120)

SHARDS = 100_000


class _Done:
    def Test(self):
        return True

    def Wait(self):
        return None


class _When:
    def __init__(self, done):
        self.done = done

    def Test(self):
        return self.done()

    def Wait(self):
        while not self.done():
            time.sleep(0.0005)


class Mailbox:
    """Every rank's queue of (source, tag, bytes), and how many messages each rank sent and got;
    the contributions to each collective (Igather, Ibcast), by call number."""

    def __init__(self, size):
        self.lock = threading.Lock()
        self.queues = defaultdict(list)
        self.sent, self.received = [0] * size, [0] * size
        self.collective = defaultdict(dict)


class MailboxComm:
    """The point-to-point calls Control makes, in order per (source, tag) as in MPI."""

    def __init__(self, rank, size, box):
        self.rank, self.size, self.box = rank, size, box
        self.calls = 0

    def _contribute(self, buf):
        self.calls += 1
        with self.box.lock:
            self.box.collective[self.calls][self.rank] = np.array(buf, copy=True)
        return self.box.collective[self.calls]

    def Igather(self, send, recv, root):
        got = self._contribute(send[0])
        if self.rank != root:
            return _Done()

        def done():
            with self.box.lock:
                if len(got) < self.size:
                    return False
                for r, row in got.items():
                    recv[0][r] = row
            return True
        return _When(done)

    def Ibcast(self, msg, root):
        if self.rank == root:
            self._contribute(msg[0])
            return _Done()
        self.calls += 1
        got = self.box.collective[self.calls]

        def done():
            with self.box.lock:
                if root not in got:
                    return False
                msg[0][:] = got[root]
            return True
        return _When(done)

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Dup(self):
        return self

    def Isend(self, msg, dest, tag):
        with self.box.lock:
            self.box.queues[dest].append((self.rank, tag, np.array(msg[0], copy=True)))
            self.box.sent[self.rank] += 1
        return _Done()

    def _find(self, source, tag):
        for i, (src, t, buf) in enumerate(self.box.queues[self.rank]):
            if t == tag and source in (src, MPI.ANY_SOURCE):
                return i, src, buf
        return None

    def Iprobe(self, source, tag, status):
        with self.box.lock:
            found = self._find(source, tag)
        if found is None:
            return False
        status.Set_source(found[1])
        status.Set_elements(MPI.BYTE, found[2].nbytes)
        return True

    def Probe(self, source, tag, status):
        while not self.Iprobe(source, tag, status):
            time.sleep(0.0005)

    def Recv(self, msg, source, tag):
        with self.box.lock:
            i, _, buf = self._find(source, tag)
            del self.box.queues[self.rank][i]
            self.box.received[self.rank] += 1
        msg[0][:] = buf


def leaf(shard):
    return {"n": np.asarray(1, np.int64)}


def combine(a, b):
    return {"n": a["n"] + b["n"]}


def ranks_with_blocks(size, box, cadence, writes, report_every=None):
    """One Control per simulated rank, each holding the folded nodes of its static block."""
    controls = []
    for r in range(size):
        fold = Fold(SHARDS, combine)
        for s in static_blocks(range(SHARDS), r, size):
            fold.push_leaf(s, leaf(s))
        writer = (lambda nodes, p, progress: writes.append((nodes, progress)) or True) if r == 0 else None
        c = Control(World(MailboxComm(r, size, box)), StopFlag(), cadence, writer, report_every)
        c.begin_pass(0, lambda fold=fold: list(fold.nodes))
        controls.append(c)
    return controls


def assert_every_shard_once(nodes):
    assert outermost(nodes) == nodes
    assert count_under(((lv, ix) for lv, ix, _ in nodes), SHARDS) == SHARDS
    assert sum(int(p["n"]) for _, _, p in nodes) == SHARDS


@pytest.mark.parametrize("ranks", [1_000])
def test_a_checkpoint_round_costs_rank_0_log2_p_messages_and_holds_every_shard_once(ranks):
    box, writes = Mailbox(ranks), []
    controls = ranks_with_blocks(ranks, box, Cadence(every_s=3600, every_shards=1), writes)
    for c in reversed(controls):          # each rank maps a shard; rank 0's starts a round
        c.after_shard(0.01)
    sweeps = 0
    while not writes:
        for c in controls[1:]:            # every other rank polls between its shards
            c.poll()
        controls[0].poll()
        sweeps += 1
        assert sweeps < 100
    log_p = math.ceil(math.log2(ranks))
    assert box.received[0] == log_p and box.sent[0] == log_p      # replies up, requests down
    assert max(box.received) <= log_p and max(box.sent) <= log_p + 1
    nodes, progress = writes[0]
    assert_every_shard_once(nodes)
    assert progress.shards == [1] * ranks
    assert sweeps <= log_p + 1            # one hop per level of the tree


def test_progress_rounds_carry_only_counts_and_cost_rank_0_log2_p_messages():
    ranks, box = 1_000, Mailbox(1_000)
    controls = ranks_with_blocks(ranks, box, None, [], report_every=0.0)   # a round whenever none is out
    log_p = math.ceil(math.log2(ranks))
    for round_ in range(3):
        for c in controls[1:]:
            c.after_shard(0.01)           # every rank's count moved
        want = [0] + [round_ + 1] * (ranks - 1)
        for _ in range(3 * log_p):
            controls[0].poll()
            for c in controls[1:]:
                c.poll()
            if controls[0].progress().shards == want:
                break
        assert controls[0].progress().shards == want
    rounds = controls[0]._rounds
    assert box.received[0] <= log_p * rounds and box.sent[0] <= log_p * rounds   # per round: log2 P each way
    assert max(box.received[1:]) <= log_p * rounds

def run_ranks(controls):
    """Every simulated rank on its own thread, polling as between shards, until it is interrupted."""
    outcome = {}

    def rank(c):
        try:
            while True:
                c.poll()
                time.sleep(0.001)
        except Interrupted as exc:
            outcome[c.rank] = exc.saved

    threads = [threading.Thread(target=rank, args=(c,)) for c in controls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcome


@pytest.mark.parametrize("signalled", [0, 999])
def test_a_stop_costs_rank_0_three_messages_per_child_and_checkpoints_every_shard_once(signalled):
    ranks = 1_000
    box, writes = Mailbox(ranks), []
    controls = ranks_with_blocks(ranks, box, Cadence(every_s=3600), writes)
    for c in controls:
        c.after_shard(0.01)
    controls[signalled].stop.name = "SIGTERM"
    outcome = run_ranks(controls)
    assert outcome == {r: True for r in range(ranks)}          # every rank stopped, checkpoint written
    children = len(ctltree.children(0, ranks))
    assert children == math.ceil(math.log2(ranks))
    asked = 1 if signalled else 0                              # the request reached rank 0 once
    assert box.sent[0] == 2 * children                         # STOP and EXIT to each child
    assert box.received[0] == children + asked                 # one FINAL from each child
    assert max(box.received) <= children + 3      # a relay: FINALs, a stop request, STOP and EXIT
    assert_every_shard_once(writes[-1][0])
    assert not any(box.queues.values())                        # no message left unread


def test_a_stop_asked_as_the_last_pass_ends_is_read_before_the_ranks_leave():
    ranks, late = 100, 99                 # rank 99's request goes through ranks 98, 96 and 64
    box, writes = Mailbox(ranks), []
    controls = ranks_with_blocks(ranks, box, Cadence(every_s=3600), writes)
    left, payload = [], np.arange(5, dtype=np.uint8)

    def rank(c):
        if c.rank == late:
            c.stop.name = "SIGTERM"       # arrives as its pass ends: the request leaves, nothing stops
            c.poll()
        everyone = c.end_pass(RankTimings())              # rank 0 goes straight here: it leads nothing
        got = c.share_outcome(payload) if c.rank == 0 else c.receive_outcome()
        assert (c.rank == 0 and len(everyone) == ranks) or (c.rank > 0 and everyone is None)
        assert c.rank == 0 or bytes(got) == bytes(payload)
        left.append(c.rank)               # the run is over for this rank: it polls no more

    threads = [threading.Thread(target=rank, args=(c,)) for c in controls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(left) == list(range(ranks))
    assert not any(box.queues.values())   # the request was read on its way (no send left unmatched)
