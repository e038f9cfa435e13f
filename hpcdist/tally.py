"""End-of-pass messages in a tree: every rank's tally gathered to rank 0, rank 0's outcome sent to all.

Rank 0 used to receive one tally message per rank and send one outcome message per rank: 2(P-1)
messages through one process, 20,000 at 10,000 ranks. Here both are MPI's non-blocking collectives
(``Igather``, ``Ibcast``), which MPI runs as trees (binomial in MPICH and Open MPI): rank 0 takes part
in O(log P) messages, and every rank keeps polling (signals, stops) while one is in flight.

A tally is a fixed row of float64: the numeric fields of :class:`RankTimings` in their declared
order, then the fields of :data:`EXTRA`. Fields that are not numbers (the schedule's name) are
the same on every rank and are taken from rank 0's own record.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Callable, Sequence

import numpy as np
from mpi4py import MPI

from hpcdist.comm import Poll, wait
from hpcdist.timings import RankTimings

EXTRA = ("stop_requests", "shards_done", "busy_s")   # what control needs of each rank
_NUMERIC = tuple(f.name for f in fields(RankTimings) if f.type in ("int", "float", int, float))
WIDTH = len(_NUMERIC) + len(EXTRA)


def pack(timings: RankTimings, extra: Sequence[float]) -> np.ndarray:
    """One rank's tally row: its timings' numbers, then ``extra`` (in :data:`EXTRA` order)."""
    return np.asarray([float(getattr(timings, name)) for name in _NUMERIC] + [float(x) for x in extra])


def unpack(rows: np.ndarray, own: RankTimings) -> tuple[list[RankTimings], np.ndarray]:
    """Every rank's RankTimings (``own``'s text fields) and the EXTRA columns, one row per rank."""
    kinds = {f.name: f.type for f in fields(RankTimings)}
    timings = []
    for row in rows:
        values = {name: (int(v) if kinds[name] in ("int", int) else float(v)) for name, v in zip(_NUMERIC, row)}
        timings.append(RankTimings(**{**own.to_json(), **values}))
    return timings, rows[:, len(_NUMERIC):]


def gather(comm: MPI.Intracomm, row: np.ndarray, poll: Poll | None) -> np.ndarray | None:
    """Every rank's ``row`` on rank 0 (P x WIDTH), None elsewhere; ``poll`` runs while waiting."""
    size, rank = comm.Get_size(), comm.Get_rank()
    if size == 1:
        return row.reshape(1, -1)
    out = np.empty((size, row.size), dtype=np.float64) if rank == 0 else None
    wait(comm.Igather([row, MPI.DOUBLE], [out, MPI.DOUBLE] if out is not None else None, root=0), poll)
    return out


def broadcast(comm: MPI.Intracomm, payload: np.ndarray | None, poll: Callable[[], None] | None) -> np.ndarray:
    """Rank 0's bytes on every rank (its length first, then the bytes), polling while waiting."""
    if comm.Get_size() == 1:
        assert payload is not None
        return payload
    n = np.asarray([payload.size if payload is not None else 0], dtype=np.int64)
    wait(comm.Ibcast([n, MPI.INT64_T], root=0), poll)
    buf = payload if payload is not None else np.empty(int(n[0]), dtype=np.uint8)
    wait(comm.Ibcast([buf, MPI.BYTE], root=0), poll)
    return buf
