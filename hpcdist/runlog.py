"""What happened, per shard and per rank: the run record kept in the output as datasets.

Each rank notes, for every shard it maps, when it started reading, finished reading and finished
computing (seconds since the run's synchronised start, on that rank's clock), and whether the
shard was stolen. At the end of each pass rank 0 gathers them (O(shards) bytes in
total, up a binomial tree) with every rank's host name (O(ranks)). Shards that came
from a checkpoint are rows with rank -1, no times and ``resumed`` set.

In the output file (:mod:`hpcdist.output`) they become one dataset per column under
``/hpcdist/shards/`` (one row per shard and pass) and ``/hpcdist/ranks/`` (one row per rank),
so a 20,000-rank run stays a few MB and the attributes keep only scalars.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import numpy as np
from mpi4py import MPI

from hpcdist.comm import Poll, World, recv_bytes, wait
from hpcdist.timings import RankTimings

SHARD_COLUMNS = ("pass", "shard", "rank", "read_start", "read_end", "compute_end", "stolen", "resumed")
RANK_COLUMNS = ("shards", "compile_s", "read_s", "compute_s", "reduce_s", "idle_s", "busy_s", "claims", "steals")
GROUP = "hpcdist"
HOST_BYTES = 64
_ROWS_TAG = 7401            # on the run's communicator; every receive names its source and this tag


class ShardLog:
    """This rank's shard rows since the last gather (a few floats per shard, never per row)."""

    def __init__(self, rank: int, origin: float) -> None:
        self.rank, self.origin = rank, origin     # origin: perf_counter() at the run's start
        self._rows: list[tuple[float, ...]] = []
        self.checkpoints: list[tuple[float, float]] = []   # rank 0: checkpoint writes (start, end)

    def add(self, pass_index: int, shard: int, t0: float, t1: float, t2: float, stolen: bool) -> None:
        o = self.origin
        self._rows.append((pass_index, shard, self.rank, t0 - o, t1 - o, t2 - o, float(stolen), 0.0))

    def add_resumed(self, pass_index: int, shards: list[int]) -> None:
        nan = float("nan")
        self._rows.extend((pass_index, s, -1, nan, nan, nan, 0.0, 1.0) for s in shards)

    def add_checkpoint(self, t0: float, t1: float) -> None:
        self.checkpoints.append((t0 - self.origin, t1 - self.origin))

    def take(self) -> np.ndarray:
        rows = np.asarray(self._rows, dtype=np.float64).reshape(-1, len(SHARD_COLUMNS))
        self._rows = []
        return rows


def gather_rows(world: World, log: ShardLog, poll: Poll | None = None) -> np.ndarray | None:
    """Collective: every rank's rows of this pass on rank 0, sorted by (pass, shard); None elsewhere.

    A binomial tree: rank 0 receives log2(P) messages, O(shards) bytes in all (MPI_Gatherv would
    post one receive per rank at the root). Waiting ranks keep answering ``poll``."""
    parts = [np.ascontiguousarray(log.take())]
    comm, rank, size, step = world.comm, world.rank, world.size, 1
    while step < size:
        if rank % (2 * step):
            rows = np.concatenate(parts)
            wait(comm.Isend([rows, MPI.DOUBLE], dest=rank - step, tag=_ROWS_TAG), poll)
            return None
        if rank + step < size:
            got = recv_bytes(comm, rank + step, _ROWS_TAG, poll).view(np.float64)
            parts.append(got.reshape(-1, len(SHARD_COLUMNS)))
        step *= 2
    return _sorted(np.concatenate(parts))


def gather_hosts(world: World) -> list[str] | None:
    """Collective: every rank's host name on rank 0 (64 bytes each); None elsewhere."""
    name = socket.gethostname().encode()[:HOST_BYTES].ljust(HOST_BYTES, b"\0")
    mine = np.frombuffer(name, dtype=np.uint8).copy()
    if world.size == 1:
        return [socket.gethostname()]
    out = np.empty(world.size * HOST_BYTES, dtype=np.uint8) if world.rank == 0 else None
    world.comm.Gather(mine, out, root=0)
    if out is None:
        return None
    return [bytes(row).rstrip(b"\0").decode(errors="replace") for row in out.reshape(world.size, HOST_BYTES)]


def _sorted(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort((rows[:, 1], rows[:, 0]))] if len(rows) else rows


@dataclass
class RunRecord:
    """Rank 0's record of a run: shard rows (all passes), every rank's timings and host, checkpoint writes."""

    shards: np.ndarray = field(default_factory=lambda: np.empty((0, len(SHARD_COLUMNS))))
    timings: list[RankTimings] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    checkpoints: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))

    def add_rows(self, rows: np.ndarray | None) -> None:
        if rows is not None and len(rows):
            self.shards = np.concatenate([self.shards, rows])

    def datasets(self) -> dict[str, np.ndarray]:
        """Name (under the file's root) -> array: one dataset per column."""
        out: dict[str, np.ndarray] = {}
        rows = self.shards
        for i, name in enumerate(SHARD_COLUMNS):
            col = rows[:, i]
            if name in ("pass", "shard", "rank"):
                col = col.astype(np.int64)
            elif name in ("stolen", "resumed"):
                col = col.astype(bool)
            out[f"{GROUP}/shards/{name}"] = col
        t = self.timings
        for name in RANK_COLUMNS:
            kind = np.int64 if name in ("shards", "claims", "steals") else np.float64
            out[f"{GROUP}/ranks/{name}"] = np.asarray([getattr(x, name) for x in t], dtype=kind)
        out[f"{GROUP}/ranks/host"] = np.asarray(self.hosts or [""] * len(t), dtype=object)
        out[f"{GROUP}/checkpoints/start"] = np.asarray(self.checkpoints[:, 0] if len(self.checkpoints) else [],
                                                       dtype=np.float64)
        out[f"{GROUP}/checkpoints/end"] = np.asarray(self.checkpoints[:, 1] if len(self.checkpoints) else [],
                                                     dtype=np.float64)
        return out
