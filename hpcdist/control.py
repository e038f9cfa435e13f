"""The run's own messages between ranks: progress snapshots, end-of-pass tallies, the next pass's
state and agreed stops. Every run uses them, with or without ``--checkpoint``; the checkpoint only
supplies a ``writer`` for rank 0 and the :class:`Cadence` of snapshots.

Everything travels in a tree (:mod:`hpcdist.ctltree`: binomial, the reduction's shape), so rank 0
handles O(log P) messages per checkpoint interval, progress interval or stop, never one per rank:

- **Collection rounds** (snapshots for the checkpoint, counts for the progress line). When one is
  due, rank 0 sends a REQUEST to its children; each rank forwards it to its own children when it
  next polls (between two shards, or while it waits), and once every child has replied it sends
  its parent one REPLY holding its subtree's counts and, for a checkpoint round, the folded nodes
  of every rank in it whose nodes changed. Rank 0 keeps the newest snapshot of every rank and
  hands the writer their union. Tree nodes either nest or are disjoint, so the union's outermost
  nodes hold every finished shard exactly once, although the snapshots were taken at different
  moments.
- **Stops.** A signal on rank r sends one STOP_REQUEST to r's parent, which forwards it (once per
  run) towards rank 0. Rank 0 sends STOP down the tree; each rank forwards it, waits for a FINAL
  from each child, sends its parent one FINAL (its own last snapshot and its subtree's), and waits
  for EXIT (whether the checkpoint was written), which it passes on before raising
  :class:`Interrupted`. Rank 0: 3 ceil(log2 P) messages, where it used to be 3 (P - 1).
- **End of a pass.** Tallies go up an ``Igather`` and the outcome down an ``Ibcast``
  (:mod:`hpcdist.tally`: MPI's own trees). Before the outcome, rank 0 finishes the round in
  flight and, if any rank sent a stop request in the pass, runs one more round: messages along an
  edge arrive in order, so every message of the pass has then been read by its receiver and no
  send is left unmatched when the ranks move on or exit.

Why rounds pulled by rank 0 rather than collectives: an ``Igather`` of snapshots every interval
would need every rank to join it, i.e. a new collective per interval that each rank must enter and
complete before the next, with variable-length frontiers (``Igatherv`` needs the sizes first). A
round needs nothing of that: a rank answers when it next polls, and nobody waits for anybody while
mapping: a slow rank delays only the moment its ancestors' replies leave, never another rank's
shards (no lockstep). A rank that dies or fails ends the job through MPI_Abort or the launcher, as
before; every wait here is a polling loop, so a rank always answers.

The messages, on a duplicate of the run's communicator (they never match data messages), one tag
per direction so that each edge is one ordered channel each way.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from mpi4py import MPI

from hpcdist import ctltree, tally
from hpcdist.comm import POLL_SLEEP_S, World, recv_bytes, wait
from hpcdist.ctltree import Report
from hpcdist.partials import Node
from hpcdist.signals import StopFlag
from hpcdist.timings import RankProgress, RankTimings
from hpcdist.tree import outermost

_UP, _DOWN = 7301, 7302


class Interrupted(Exception):
    """Every rank stopped at a safe point after a signal; ``saved`` tells if the checkpoint was written."""

    def __init__(self, saved: bool, signal_name: str) -> None:
        super().__init__(f"stopped by {signal_name}; checkpoint {'written' if saved else 'NOT written'}")
        self.saved = saved


@dataclass(frozen=True)
class Cadence:
    """How often rank 0 collects snapshots: every ``every_s`` seconds or every ``every_shards`` of
    its own shards (the ranks map at about the same rate; a round reaches every rank)."""

    every_s: float
    every_shards: int | None = None


# rank 0: make the union of snapshots durable (nodes, pass index, progress); False if that failed
Writer = Callable[[list[Node], int, RankProgress], bool]


@dataclass
class _Round:
    """A collection round on this rank: which children have not replied, and what they said."""

    ident: int
    nodes: bool                     # snapshots wanted (else counts only)
    waiting: set[int]
    got: Report = field(default_factory=Report)


class Control:
    """One per rank and run. Call :meth:`after_shard` after each shard, pass :meth:`poll` to every
    wait, and end each pass with :meth:`end_pass` and :meth:`share_outcome`/:meth:`receive_outcome`.
    Without a cadence no snapshots travel: only counts (``report_every``), stops, tallies, outcomes."""

    def __init__(self, world: World, stop: StopFlag, cadence: Cadence | None = None,
                 writer: Writer | None = None, report_every: float | None = None,
                 watch: Callable[[], None] | None = None) -> None:
        self.ctl = world.comm.Dup()
        self.report_every, self.watch = report_every, watch   # progress: counts to rank 0; rank 0's line
        self.cadence, self.stop, self.writer = cadence, stop, writer
        self.rank, self.size = world.rank, world.size
        self.parent, self.children = ctltree.parent(self.rank), ctltree.children(self.rank, self.size)
        self.nodes: Callable[[], list[Node]] = list
        self.pass_index = 0
        self.shards_done = 0
        self.busy_s = 0.0
        self._seq = 0
        self._asked_stop = False              # this rank sent its one stop request of the run
        self._stop_requests = 0               # ... in this pass (tallied: rank 0 then flushes)
        self._pending: list[tuple[MPI.Request, np.ndarray]] = []
        self._dirty = False
        self._counted = -1                    # shards_done when this rank's count last went up
        self._round: _Round | None = None
        # rank 0's view of everyone
        self._rounds = 0
        self._last_round = self._last_nodes = time.monotonic()
        self._shards_at_nodes = 0
        self._flush = False
        self._latest: dict[int, tuple[int, list[Node]]] = {}
        self._shards = np.zeros(self.size, dtype=np.int64)
        self._busy = np.zeros(self.size, dtype=np.float64)
        self._stop_wanted: str | bool = False   # False, or why another rank asked to stop

    # ---- every rank --------------------------------------------------------------------------

    def begin_pass(self, pass_index: int, nodes: Callable[[], list[Node]]) -> None:
        """``nodes()`` returns this rank's current folded nodes (the pass's progress)."""
        self.pass_index, self.nodes = pass_index, nodes
        self._latest = {}
        self._dirty = False
        self._stop_requests = 0
        self._last_nodes = time.monotonic()

    def after_shard(self, busy_s: float) -> None:
        self.shards_done += 1
        self.busy_s += busy_s
        self._dirty = True
        self.poll()

    def poll(self) -> None:
        """Serve control traffic; raises :class:`Interrupted` when the ranks agreed to stop."""
        self._serve()
        if self.rank == 0:
            if self.stop.is_set or self._stop_wanted:
                self._lead_stop()
            if self._round is None:
                self._maybe_start_round()
            if self.watch is not None:
                self.watch()
        elif self.stop.is_set:
            self._ask_stop(f"{self.stop.name} on rank {self.rank}")
        self._reap()

    def end_pass(self, timings: RankTimings) -> list[RankTimings] | None:
        """After the reduction: every rank's timings to rank 0 (None elsewhere), up MPI's tree."""
        row = tally.pack(timings, (self._stop_requests, self.shards_done, self.busy_s))
        rows = tally.gather(self.ctl, row, self.waiting_poll)
        if rows is None:
            return None
        everyone, extra = tally.unpack(rows, timings)
        stop_requests, self._shards[:], self._busy[:] = extra[:, 0], extra[:, 1], extra[:, 2]
        self._flush = bool(stop_requests.sum() > 0)   # some relay may not have read one yet
        return [timings] + everyone[1:]

    def share_outcome(self, payload: np.ndarray) -> None:
        """Rank 0: the pass's outcome (next state or "done") to every other rank."""
        self._settle()
        tally.broadcast(self.ctl, payload, self.waiting_poll)
        self._complete_sends()

    def receive_outcome(self) -> np.ndarray:
        """Other ranks: wait for rank 0's outcome while still answering rounds and a stop."""
        buf = tally.broadcast(self.ctl, None, self.waiting_poll)
        self._complete_sends()
        return buf

    def progress(self) -> RankProgress:
        """Rank 0: shards done and busy seconds per rank, as last reported."""
        shards, busy = self._shards.tolist(), self._busy.tolist()
        shards[0], busy[0] = self.shards_done, self.busy_s
        return RankProgress(shards=[int(s) for s in shards], busy_s=[float(b) for b in busy])

    def checkpoint_now(self) -> bool:
        """Rank 0: hand the writer what is known now (at a pass boundary, say)."""
        return self._write(force=True)

    # ---- the tree ----------------------------------------------------------------------------

    def _serve(self) -> None:
        """Read and act on every waiting message from the parent and from the children."""
        status = MPI.Status()
        while self.rank != 0 and self.ctl.Iprobe(source=self.parent, tag=_DOWN, status=status):
            kind, meta, _ = ctltree.unpack(recv_bytes(self.ctl, self.parent, _DOWN))
            if kind == ctltree.STOP:
                self._follow_stop()
            elif kind == ctltree.REQUEST:
                self._open_round(int(meta["round"]), bool(meta["nodes"]))
        while self.children and self.ctl.Iprobe(source=MPI.ANY_SOURCE, tag=_UP, status=status):
            src = status.Get_source()
            kind, meta, report = ctltree.unpack(recv_bytes(self.ctl, src, _UP))
            if kind == ctltree.STOP_REQUEST:
                self._ask_stop(str(meta.get("why", f"a signal on rank {src}")))
            elif kind == ctltree.REPLY and self._round is not None and src in self._round.waiting:
                self._round.got.add(report)
                self._round.waiting.discard(src)
                if not self._round.waiting:
                    self._close_round()

    def waiting_poll(self) -> None:
        """While waiting at the end of a pass: serve the tree; a new signal waits for the next pass."""
        self._serve()
        self._reap()

    def _ask_stop(self, why: str) -> None:
        if self.rank == 0:
            self._stop_wanted = self._stop_wanted or why
        elif not self._asked_stop:
            self._asked_stop = True
            self._stop_requests += 1
            self._send(self.parent, _UP, ctltree.pack(ctltree.STOP_REQUEST, why=why))

    def _open_round(self, ident: int, nodes: bool) -> None:
        self._round = _Round(ident, nodes, set(self.children))
        request = ctltree.pack(ctltree.REQUEST, round=ident, nodes=nodes)
        for child in self.children:
            self._send(child, _DOWN, request)
        if not self.children:
            self._close_round()

    def _close_round(self) -> None:
        done, self._round = self._round, None
        assert done is not None
        if self.rank != 0:
            done.got.add(self._own_report(done.nodes))
            self._send(self.parent, _UP, ctltree.pack(ctltree.REPLY, done.got, round=done.ident))
            return
        self._take(done.got)
        if done.nodes:
            self._write()

    def _own_report(self, nodes: bool, final: bool = False) -> Report:
        """This rank's counts if they moved, and its nodes if wanted and changed (always in a FINAL)."""
        report = Report()
        if self.shards_done != self._counted or final:
            report.count(self.rank, self.shards_done, self.busy_s)
            self._counted = self.shards_done
        if self.cadence is not None and (final or (nodes and self._dirty)):
            self._seq += 1
            report.snapshots.append((self.rank, self._seq, self.pass_index, list(self.nodes())))
            self._dirty = False
        return report

    # ---- rank 0 ------------------------------------------------------------------------------

    def _maybe_start_round(self) -> None:
        now = time.monotonic()
        every = self.cadence
        if every is not None and (now - self._last_nodes >= every.every_s or (
                every.every_shards is not None and self.shards_done - self._shards_at_nodes >= every.every_shards)):
            self._last_nodes, self._shards_at_nodes = now, self.shards_done
            self._start_round(True)
        elif self.report_every is not None and now - self._last_round >= self.report_every:
            self._start_round(False)

    def _start_round(self, nodes: bool) -> None:
        self._rounds += 1
        self._last_round = time.monotonic()
        self._open_round(self._rounds, nodes)

    def _settle(self) -> None:
        """Rank 0, pass over: finish the round in flight, and one more if a stop request travelled."""
        rounds = [False] if self._flush else []
        self._flush = False
        while True:
            while self._round is not None:
                self.waiting_poll()
                time.sleep(POLL_SLEEP_S)
            if not rounds:
                return
            self._start_round(rounds.pop())

    def _take(self, report: Report) -> None:
        """Rank 0: newest counts and snapshots of a subtree's report."""
        table = report.table()
        if len(table):
            ranks = table[:, 0].astype(np.int64)
            self._shards[ranks], self._busy[ranks] = table[:, 1].astype(np.int64), table[:, 2]
        for origin, seq, pass_index, nodes in report.snapshots:
            if pass_index != self.pass_index:
                continue                    # from an earlier pass: superseded
            if origin not in self._latest or self._latest[origin][0] < seq:
                self._latest[origin] = (seq, nodes)
                self._dirty = True

    def _lead_stop(self) -> None:
        name = f"{self.stop.name} on rank 0" if self.stop.is_set else str(self._stop_wanted)
        print(f"hpcdist: {name}: stopping all {self.size} rank(s) at the next shard boundary "
              f"and checkpointing", file=sys.stderr, flush=True)
        self._round = None                  # abandoned: its replies are read and dropped below
        for child in self.children:
            self._send(child, _DOWN, ctltree.pack(ctltree.STOP))
        self._take(self._collect_finals())
        saved = self._write(force=True) if self.cadence is not None else False
        self._pass_exit(saved)
        raise Interrupted(saved, name)

    def _write(self, force: bool = False) -> bool:
        if self.writer is None or not (self._dirty or force):
            return True
        union = list(self.nodes())
        for _, nodes in self._latest.values():
            union.extend(nodes)
        ok = self.writer(outermost(union), self.pass_index, self.progress())
        self._dirty = False
        return ok

    # ---- a stop, on every rank ---------------------------------------------------------------

    def _follow_stop(self) -> None:
        self._round = None
        for child in self.children:
            self._send(child, _DOWN, ctltree.pack(ctltree.STOP))
        finals = self._collect_finals()
        finals.add(self._own_report(True, final=True))
        self._send(self.parent, _UP, ctltree.pack(ctltree.FINAL, finals))
        kind, meta = ctltree.REQUEST, {}
        while kind != ctltree.EXIT:        # after STOP the parent sends only EXIT
            kind, meta, _ = ctltree.unpack(recv_bytes(self.ctl, self.parent, _DOWN, self._reap))
        saved = bool(meta["saved"])
        self._pass_exit(saved)
        raise Interrupted(saved, "a stop led by rank 0")

    def _collect_finals(self) -> Report:
        """Every child's FINAL (its subtree's last snapshots); what came before it is superseded."""
        finals, waiting, status = Report(), set(self.children), MPI.Status()
        while waiting:
            if self.ctl.Iprobe(source=MPI.ANY_SOURCE, tag=_UP, status=status):
                src = status.Get_source()
                kind, _, report = ctltree.unpack(recv_bytes(self.ctl, src, _UP))
                if kind == ctltree.FINAL:
                    finals.add(report)
                    waiting.discard(src)
            else:
                self._reap()
                time.sleep(POLL_SLEEP_S)
        return finals

    def _pass_exit(self, saved: bool) -> None:
        for child in self.children:
            self._send(child, _DOWN, ctltree.pack(ctltree.EXIT, saved=saved))
        self._complete_sends()

    # ---- plumbing ----------------------------------------------------------------------------

    def _send(self, dest: int, tag: int, buf: np.ndarray) -> None:
        self._pending.append((self.ctl.Isend([buf, MPI.BYTE], dest=dest, tag=tag), buf))

    def _reap(self) -> None:
        self._pending = [(req, buf) for req, buf in self._pending if not req.Test()]

    def _complete_sends(self) -> None:
        for req, _ in self._pending:
            wait(req)
        self._pending = []
