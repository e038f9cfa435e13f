"""The shuffle: every rank's folded nodes, cut by key range, moved to the owners in bounded rounds.

A rank holds O(log S) folded tree nodes after its map phase (:class:`hpcdist.tree.Fold`). Each
node is cut at the splitters; the slice for rank d travels (with its tree level and index, as
:func:`hpcdist.partials.encode` buffers) in ``Alltoallv`` rounds of :mod:`.rounds`, so no count
reaches 2**31 and one round holds at most ``round_bytes`` bytes per rank. Empty slices are not
sent, and the slices a rank owns itself never leave it (no copy): an owner folds the nodes it gets
with the holes as empty subtrees (:func:`.fold.fold_nodes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from hpcdist.keyed.fold import KEYS, take
from hpcdist.keyed.partition import bounds
from hpcdist.keyed.rounds import chunk_bytes, round_counts, rounds_needed
from hpcdist.partials import Node, decode, encode


@dataclass
class ShuffleStats:
    """What this rank's shuffle moved: rounds (same on every rank), bytes sent and received."""

    rounds: int = 0
    sent_bytes: int = 0
    received_bytes: int = 0


def outgoing(nodes: list[Node], cuts: np.ndarray, ranks: int, rank: int) -> tuple[list[np.ndarray], list[Node]]:
    """One byte buffer per destination rank (the slices of ``nodes`` that rank owns), and the
    slices this rank owns itself, kept as they are (never encoded, sent or decoded)."""
    per_dest: list[list[Node]] = [[] for _ in range(ranks)]
    for level, index, partial in nodes:
        b = bounds(partial[KEYS], cuts, ranks)
        for d in np.flatnonzero(b[1:] > b[:-1]):
            per_dest[d].append((level, index, take(partial, slice(int(b[d]), int(b[d + 1])))))
    buffers = [encode(slices) if slices and d != rank else np.zeros(0, np.uint8) for d, slices in enumerate(per_dest)]
    return buffers, per_dest[rank]


def exchange(comm: MPI.Intracomm, buffers: list[np.ndarray], round_bytes: int) -> tuple[list[np.ndarray], ShuffleStats]:
    """Alltoallv in rounds: ``buffers[d]`` goes to rank d; returns what every rank sent here."""
    ranks = comm.Get_size()
    sizes = np.array([len(b) for b in buffers], dtype=np.int64)
    incoming = np.zeros(ranks, dtype=np.int64)
    comm.Alltoall([sizes, MPI.INT64_T], [incoming, MPI.INT64_T])
    chunk = chunk_bytes(round_bytes, ranks)
    rounds = comm.allreduce(rounds_needed(sizes, chunk), op=MPI.MAX)
    received = [np.empty(int(n), dtype=np.uint8) for n in incoming]
    for k in range(rounds):
        scounts, sdispls = round_counts(sizes, chunk, k)
        rcounts, rdispls = round_counts(incoming, chunk, k)
        lo = k * chunk
        send = np.concatenate([b[lo:lo + int(c)] for b, c in zip(buffers, scounts)]) if ranks else np.zeros(0, np.uint8)
        recv = np.empty(int(rcounts.sum()), dtype=np.uint8)
        comm.Alltoallv([send, (scounts.tolist(), sdispls.tolist()), MPI.BYTE],
                       [recv, (rcounts.tolist(), rdispls.tolist()), MPI.BYTE])
        for s in np.flatnonzero(rcounts):
            received[s][lo:lo + int(rcounts[s])] = recv[int(rdispls[s]):int(rdispls[s] + rcounts[s])]
    return received, ShuffleStats(rounds, int(sizes.sum()), int(incoming.sum()))


def shuffle(comm: MPI.Intracomm, nodes: list[Node], cuts: np.ndarray, round_bytes: int
            ) -> tuple[list[Node], ShuffleStats]:
    """The node slices of every rank that hold this rank's keys."""
    buffers, got = outgoing(nodes, cuts, comm.Get_size(), comm.Get_rank())
    received, stats = exchange(comm, buffers, round_bytes)
    for s in range(len(received)):
        if len(received[s]):
            got.extend(decode(received[s]))
        received[s] = np.zeros(0, np.uint8)       # one source's bytes at a time beside the decoded nodes
    return got, stats
