"""The run's own messages between ranks: progress snapshots, end-of-pass tallies, the next pass's
state and agreed stops. Every run uses them, with or without ``--checkpoint``; the checkpoint only
supplies a ``writer`` for rank 0 and the :class:`Cadence` of snapshots.

No rank ever waits for rank 0. Each rank sends rank 0 a *snapshot* of its folded tree nodes (a
small Isend) when one is due; rank 0, between its own shards, keeps the newest snapshot of every
rank and hands their union to the writer. Tree nodes either nest or are disjoint, so the union,
keeping only the outermost nodes, holds every finished shard exactly once, even when snapshots were
taken at different moments. A stop (a signal on any rank) goes to rank 0, which tells every rank;
each sends a final snapshot, rank 0 writes the checkpoint, and every rank raises
:class:`Interrupted`. Every wait is a polling loop, so a rank always answers.

The messages, on a duplicate of the run's communicator (they never match data messages):

- SNAPSHOT r -> 0: folded nodes, shards done and busy seconds, when the cadence says so; or, for
  the progress line (``report_every``), only the counts (``counts_only``, no nodes)
- STOP_REQUEST r -> 0: a signal arrived on r
- STOP 0 -> r: stop at the next safe point; FINAL r -> 0: the last snapshot and message counts;
  EXIT 0 -> r: whether the checkpoint was written
- TALLY r -> 0: end of a pass: r's :class:`RankTimings` and how many messages it sent, gathered up
  MPI's tree (``Igather``, :mod:`hpcdist.tally`): rank 0 takes part in O(log P) messages, not P
- OUTCOME 0 -> r: the next pass's state, or "done", down the same kind of tree (``Ibcast``)
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from mpi4py import MPI

from hpcdist import tally
from hpcdist.comm import POLL_SLEEP_S, World, recv_bytes, wait
from hpcdist.partials import Node, decode_with_meta, encode
from hpcdist.signals import StopFlag
from hpcdist.timings import RankProgress, RankTimings
from hpcdist.tree import outermost

_SNAPSHOT, _STOP_REQUEST, _STOP, _FINAL, _EXIT = range(7301, 7306)


class Interrupted(Exception):
    """Every rank stopped at a safe point after a signal; ``saved`` tells if the checkpoint was written."""

    def __init__(self, saved: bool, signal_name: str) -> None:
        super().__init__(f"stopped by {signal_name}; checkpoint {'written' if saved else 'NOT written'}")
        self.saved = saved


@dataclass(frozen=True)
class Cadence:
    """How often ranks send rank 0 a snapshot: every ``every_s`` seconds or ``every_shards`` shards."""

    every_s: float
    every_shards: int | None = None


# rank 0: make the union of snapshots durable (nodes, pass index, progress); False if that failed
Writer = Callable[[list[Node], int, RankProgress], bool]


class Control:
    """One per rank and run. Call :meth:`after_shard` after each shard, pass :meth:`poll` to every
    wait, and end each pass with :meth:`end_pass` and :meth:`share_outcome`/:meth:`receive_outcome`.
    Without a cadence no snapshots are sent: only stops, tallies and outcomes travel."""

    def __init__(self, world: World, stop: StopFlag, cadence: Cadence | None = None,
                 writer: Writer | None = None, report_every: float | None = None,
                 watch: Callable[[], None] | None = None) -> None:
        self.ctl = world.comm.Dup()
        self.report_every, self.watch = report_every, watch   # progress: counts to rank 0; rank 0's line
        self.cadence, self.stop, self.writer = cadence, stop, writer
        self.rank, self.size = world.rank, world.size
        self.nodes: Callable[[], list[Node]] = list
        self.pass_index = 0
        self.shards_done = 0
        self.busy_s = 0.0
        self._seq = 0
        self._sent = {"snapshots": 0, "stop_requests": 0}
        self._pending: list[tuple[MPI.Request, np.ndarray]] = []
        self._last_report = time.monotonic()
        self._shards_at_report = 0
        self._dirty = False
        self._last_count, self._counted = time.monotonic(), 0
        # rank 0's view of everyone
        self._latest: dict[int, tuple[int, list[Node]]] = {}
        self._received: dict[int, int] = {}
        self._stop_requests: dict[int, int] = {}
        self._rank_progress: dict[int, tuple[int, float]] = {}
        self._stop_wanted: str | bool = False   # False, or why another rank asked to stop

    # ---- every rank --------------------------------------------------------------------------

    def begin_pass(self, pass_index: int, nodes: Callable[[], list[Node]]) -> None:
        """``nodes()`` returns this rank's current folded nodes (the pass's progress)."""
        self.pass_index, self.nodes = pass_index, nodes
        self._latest = {}
        self._last_report = time.monotonic()

    def after_shard(self, busy_s: float) -> None:
        self.shards_done += 1
        self.busy_s += busy_s
        self._dirty = True
        self.poll()

    def poll(self) -> None:
        """Serve control traffic; raises :class:`Interrupted` when the ranks agreed to stop."""
        if self.rank == 0:
            self._root_poll()
        else:
            self._rank_poll()

    def end_pass(self, timings: RankTimings) -> list[RankTimings] | None:
        """After the reduction: account for every message of the pass. Rank 0 gets every rank's timings."""
        row = tally.pack(timings, (self._sent["snapshots"], self._sent["stop_requests"], self.shards_done, self.busy_s))
        rows = tally.gather(self.ctl, row, self._serve if self.rank == 0 else self._waiting_poll)
        if rows is None:
            return None
        everyone, extra = tally.unpack(rows, timings)
        for r in range(1, self.size):          # only what r sent that rank 0 has not read yet is received
            snapshots, stop_requests, shards, busy_s = extra[r]
            self._drain(r, int(snapshots), int(stop_requests))
            self._rank_progress[r] = (int(shards), float(busy_s))
        return [timings] + everyone[1:]

    def share_outcome(self, payload: np.ndarray) -> None:
        """Rank 0: the pass's outcome (next state or "done") to every other rank."""
        tally.broadcast(self.ctl, payload, self._serve)
        self._complete_sends()

    def receive_outcome(self) -> np.ndarray:
        """Other ranks: wait for rank 0's outcome while still answering a stop."""
        buf = tally.broadcast(self.ctl, None, self._waiting_poll)
        self._complete_sends()
        return buf

    def progress(self) -> RankProgress:
        """Rank 0: shards done and busy seconds per rank, as last reported."""
        table = {**self._rank_progress, 0: (self.shards_done, self.busy_s)}
        return RankProgress(shards=[table.get(r, (0, 0.0))[0] for r in range(self.size)],
                            busy_s=[table.get(r, (0, 0.0))[1] for r in range(self.size)])

    def checkpoint_now(self) -> bool:
        """Rank 0: hand the writer what is known now (at a pass boundary, say)."""
        return self._write(force=True)

    # ---- ranks other than 0 ------------------------------------------------------------------

    def _rank_poll(self) -> None:
        if self.stop.is_set and self._sent["stop_requests"] == 0:
            self._isend(encode([], {"why": f"{self.stop.name} on rank {self.rank}"}), 0, _STOP_REQUEST)
            self._sent["stop_requests"] = 1
        if self.ctl.Iprobe(source=0, tag=_STOP):
            self._follow_stop()
        if self._due():
            self._seq += 1
            self._isend(encode(self.nodes(), self._meta()), 0, _SNAPSHOT)
            self._sent["snapshots"] += 1
            self._mark_reported()
        elif self._counts_due():
            self._isend(encode([], {**self._meta(), "counts_only": True}), 0, _SNAPSHOT)
            self._sent["snapshots"] += 1
            self._last_count, self._counted = time.monotonic(), self.shards_done
        self._reap()

    def _waiting_poll(self) -> None:
        """While waiting for rank 0's outcome: only a stop can interrupt; progress is already told."""
        if self.ctl.Iprobe(source=0, tag=_STOP):
            self._follow_stop()

    def _follow_stop(self) -> None:
        self.ctl.Recv([np.empty(0, np.uint8), MPI.BYTE], source=0, tag=_STOP)
        self._seq += 1
        meta = {**self._meta(), **self._sent}
        self._isend(encode(self.nodes(), meta), 0, _FINAL)
        verdict = recv_bytes(self.ctl, 0, _EXIT)
        self._complete_sends()
        raise Interrupted(bool(verdict[0]), "a stop led by rank 0")

    # ---- rank 0 ------------------------------------------------------------------------------

    def _root_poll(self) -> None:
        self._serve()
        if self.stop.is_set or self._stop_wanted:
            self._lead_stop()
        if self._due():
            self._write()
        if self.watch is not None:
            self.watch()

    def _serve(self) -> None:
        """Read every waiting snapshot and stop request."""
        status = MPI.Status()
        while self.ctl.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
            tag, src = status.Get_tag(), status.Get_source()
            if tag not in (_SNAPSHOT, _STOP_REQUEST):
                break                       # FINAL is only read while leading a stop
            nodes, meta = decode_with_meta(recv_bytes(self.ctl, src, tag))
            if tag == _SNAPSHOT:
                self._received[src] = self._received.get(src, 0) + 1
                self._take_snapshot(src, nodes, meta)
            else:
                self._stop_requests[src] = self._stop_requests.get(src, 0) + 1
                self._stop_wanted = self._stop_wanted or meta.get("why", f"a signal on rank {src}")

    def _take_snapshot(self, src: int, nodes: list[Node], meta: dict) -> None:
        if meta.get("pass") != self.pass_index:
            return                          # from an earlier pass: superseded
        if meta.get("counts_only"):
            self._rank_progress[src] = (meta["shards"], meta["busy_s"])
            return
        if src not in self._latest or self._latest[src][0] < meta["seq"]:
            self._latest[src] = (meta["seq"], nodes)
            self._rank_progress[src] = (meta["shards"], meta["busy_s"])
            self._dirty = True

    def _drain(self, src: int, snapshots: int, stop_requests: int) -> None:
        """Receive whatever ``src`` sent that rank 0 has not read yet (its sends can then complete)."""
        while self._received.get(src, 0) < snapshots:
            nodes, meta = decode_with_meta(recv_bytes(self.ctl, src, _SNAPSHOT))
            self._received[src] = self._received.get(src, 0) + 1
            self._take_snapshot(src, nodes, meta)
        while self._stop_requests.get(src, 0) < stop_requests:
            meta = decode_with_meta(recv_bytes(self.ctl, src, _STOP_REQUEST))[1]
            self._stop_requests[src] = self._stop_requests.get(src, 0) + 1
            self._stop_wanted = self._stop_wanted or meta.get("why", f"a signal on rank {src}")

    def _lead_stop(self) -> None:
        name = f"{self.stop.name} on rank 0" if self.stop.is_set else str(self._stop_wanted)
        print(f"hpcdist: {name}: stopping all {self.size} rank(s) at the next shard boundary "
              f"and checkpointing", file=sys.stderr, flush=True)
        for r in range(1, self.size):
            self._isend(np.empty(0, np.uint8), r, _STOP)
        finals = self._collect_finals()
        for r, meta in finals.items():
            self._drain(r, meta["snapshots"], meta["stop_requests"])   # a gather in flight is abandoned
        saved = self._write(force=True) if self.cadence is not None else False
        for r in range(1, self.size):
            self._isend(np.array([1 if saved else 0], np.uint8), r, _EXIT)
        self._complete_sends()
        raise Interrupted(saved, name)

    def _collect_finals(self) -> dict[int, dict]:
        finals: dict[int, dict] = {}
        status = MPI.Status()
        while len(finals) < self.size - 1:
            if self.ctl.Iprobe(source=MPI.ANY_SOURCE, tag=_FINAL, status=status):
                src = status.Get_source()
                nodes, meta = decode_with_meta(recv_bytes(self.ctl, src, _FINAL))
                finals[src] = meta
                self._take_snapshot(src, nodes, meta)
            else:
                self._serve()               # keep reading snapshots so senders never block
                time.sleep(POLL_SLEEP_S)
        return finals

    def _write(self, force: bool = False) -> bool:
        if self.writer is None or not (self._dirty or force):
            return True
        union = list(self.nodes())
        for _, nodes in self._latest.values():
            union.extend(nodes)
        ok = self.writer(outermost(union), self.pass_index, self.progress())
        self._dirty = False
        self._mark_reported()
        return ok

    # ---- plumbing ----------------------------------------------------------------------------

    def _meta(self) -> dict:
        return {"seq": self._seq, "pass": self.pass_index, "shards": self.shards_done, "busy_s": self.busy_s}

    def _due(self) -> bool:
        if self.cadence is None or not self._dirty:
            return False
        if time.monotonic() - self._last_report >= self.cadence.every_s:
            return True
        n = self.cadence.every_shards
        return n is not None and self.shards_done - self._shards_at_report >= n

    def _counts_due(self) -> bool:
        every = self.report_every
        return (every is not None and self.shards_done > self._counted
                and time.monotonic() - max(self._last_count, self._last_report) >= every)

    def _mark_reported(self) -> None:
        self._last_report = self._last_count = time.monotonic()
        self._shards_at_report = self.shards_done
        if self.rank != 0:
            self._dirty = False

    def _isend(self, buf: np.ndarray, dest: int, tag: int) -> None:
        self._pending.append((self.ctl.Isend([buf, MPI.BYTE], dest=dest, tag=tag), buf))

    def _reap(self) -> None:
        self._pending = [(req, buf) for req, buf in self._pending if not req.Test()]

    def _complete_sends(self) -> None:
        for req, _ in self._pending:
            wait(req)
        self._pending = []
