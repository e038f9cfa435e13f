"""Bounded exchange rounds: any total (int64) moved with every MPI count and displacement < 2**31.

Each rank sends ``sizes[d]`` bytes to rank ``d`` (int64: may exceed 2**31). Round ``k`` moves the
bytes ``[k*c, (k+1)*c)`` of every pair, with ``c = max(1, round_bytes // ranks)``, so one round
sends and receives at most ``round_bytes`` bytes per rank (kept below 2**31, MPI's int counts).
Pure functions, testable without MPI or memory.
"""

from __future__ import annotations

import numpy as np

MAX_ROUND_BYTES = 2**30
DEFAULT_ROUND_BYTES = 64 * 2**20


def chunk_bytes(round_bytes: int, ranks: int) -> int:
    """The bytes one pair of ranks moves per round."""
    return max(1, min(int(round_bytes), MAX_ROUND_BYTES) // max(1, ranks))


def rounds_needed(sizes: np.ndarray, chunk: int) -> int:
    """Rounds for this rank's largest message (take the max over ranks)."""
    most = int(np.max(sizes)) if len(sizes) else 0
    return -(-most // chunk)


def round_counts(sizes: np.ndarray, chunk: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(counts, displacements) of round ``k``: each below 2**31, the counts summing to <= ranks*chunk."""
    sizes = np.asarray(sizes, dtype=np.int64)
    counts = np.clip(sizes - np.int64(k) * chunk, 0, chunk).astype(np.int64)
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return counts, displs
