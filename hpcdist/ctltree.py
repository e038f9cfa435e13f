"""The control tree: who a rank's parent and children are, and what travels along its edges.

The run's own messages (:mod:`hpcdist.control`) go up and down a binomial tree of ranks, the same
shape as the reduction's (:mod:`hpcdist.reduce`): rank r's parent is r with its lowest set bit
cleared, so rank 0 has ceil(log2 P) children and every rank at most that many. A message along an
edge carries a :class:`Report` for a whole subtree, so rank 0 handles O(log P) messages however
many ranks report.

A message is one :func:`hpcdist.partials.encode` buffer (JSON header, raw arrays; no pickle): a
``kind``, small fields, the subtree's shard counts as one float64 array (rank, shards, busy
seconds per row) and the tree nodes of every snapshot in it, concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpcdist.partials import Node, decode_with_meta, encode

# down: REQUEST (a collection round), STOP, EXIT; up: REPLY (to a round), STOP_REQUEST, FINAL
REQUEST, REPLY, STOP_REQUEST, STOP, FINAL, EXIT = range(6)
_COUNTS = 3   # columns of a counts row: rank, shards done, busy seconds


def parent(rank: int) -> int:
    """The rank this one reports to (rank 0 has none and returns 0)."""
    return rank & (rank - 1)


def children(rank: int, size: int) -> list[int]:
    """The ranks that report to ``rank``: rank + 2**k for every 2**k below its lowest set bit."""
    lowest = rank & -rank if rank else size
    out, step = [], 1
    while step < lowest and rank + step < size:
        out.append(rank + step)
        step *= 2
    return out


@dataclass
class Report:
    """What a subtree tells rank 0: counts rows and snapshots ``(origin, seq, pass, nodes)``."""

    counts: list[np.ndarray] = field(default_factory=list)
    snapshots: list[tuple[int, int, int, list[Node]]] = field(default_factory=list)

    def add(self, other: "Report") -> None:
        self.counts.extend(other.counts)
        self.snapshots.extend(other.snapshots)

    def count(self, rank: int, shards: int, busy_s: float) -> None:
        self.counts.append(np.asarray([[rank, shards, busy_s]], dtype=np.float64))

    def table(self) -> np.ndarray:
        """Every counts row, one array (n x 3)."""
        if not self.counts:
            return np.zeros((0, _COUNTS))
        return np.concatenate([c.reshape(-1, _COUNTS) for c in self.counts])


def pack(kind: int, report: Report | None = None, **fields: Any) -> np.ndarray:
    """One message: ``kind``, JSON-able ``fields`` and a subtree's report."""
    report = report or Report()
    nodes: list[Node] = [(-1, 0, report.table())]
    heads = []
    for origin, seq, pass_index, held in report.snapshots:
        heads.append([origin, seq, pass_index, len(held)])
        nodes.extend(held)
    return encode(nodes, {**fields, "kind": kind, "snapshots": heads})


def unpack(buf: np.ndarray) -> tuple[int, dict[str, Any], Report]:
    """``(kind, fields, report)`` of a :func:`pack` buffer."""
    nodes, meta = decode_with_meta(buf)
    table = np.asarray(nodes[0][2], dtype=np.float64).reshape(-1, _COUNTS)
    report = Report([table] if len(table) else [], [])
    pos = 1
    for origin, seq, pass_index, n in meta.pop("snapshots"):
        report.snapshots.append((int(origin), int(seq), int(pass_index), nodes[pos:pos + n]))
        pos += n
    return int(meta.pop("kind")), meta, report
