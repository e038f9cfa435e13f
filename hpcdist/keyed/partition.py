"""Which rank owns which keys: a range partition with splitters chosen from a sample.

Why ranges and not a hash: the result is sorted by key, and with ranges rank r's keys are one
contiguous, already sorted slice of the output (``/keys[offset_r : offset_r + n_r]``), so every
owner writes its part with no second exchange and no global sort. The splitters only decide who
owns a key, never the order of any combine (that is the shard tree's), so they cannot change a
bit. A skewed key *frequency* does not unbalance the owners: rows are folded per shard first, so
an owner receives at most one partial per key per node, whatever the key's row count.
"""

from __future__ import annotations

import numpy as np

SAMPLES_PER_RANK = 64


def local_sample(keys: np.ndarray, samples: int = SAMPLES_PER_RANK) -> np.ndarray:
    """Up to ``samples`` evenly spaced keys of this rank's sorted distinct keys."""
    if len(keys) <= samples:
        return keys.astype(np.int64)
    at = (np.arange(samples, dtype=np.int64) * len(keys)) // samples
    return keys[at].astype(np.int64)


def fixed_sample(samples: np.ndarray, weights: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """This rank's weighted samples as exactly ``size`` entries (ascending, weight-0 padding at
    the end), so every rank sends the same count to rank 0 (``MPI_Gather``, a tree). More samples
    than ``size`` (a resumed rank 0 can hold many nodes) are thinned to evenly spaced ones, each
    carrying the weight of those up to the next: the total weight stays."""
    order = np.argsort(samples, kind="stable")
    values, weight = samples[order].astype(np.int64), weights[order].astype(np.float64)
    if len(values) > size:
        at = (np.arange(size, dtype=np.int64) * len(values)) // size
        values, weight = values[at], np.add.reduceat(weight, at)
    pad = size - len(values)
    return np.concatenate([values, np.zeros(pad, np.int64)]), np.concatenate([weight, np.zeros(pad)])


def splitters(samples: np.ndarray, weights: np.ndarray, ranks: int) -> np.ndarray:
    """``ranks - 1`` ascending splitters: sample values where the cumulative weight (the distinct
    keys each sample stands for) crosses ``j / ranks`` of the total. Key ``k`` goes to rank
    ``searchsorted(splitters, k, side='right')``."""
    keep = weights > 0                  # padding of fixed_sample
    samples, weights = samples[keep], weights[keep]
    if ranks <= 1 or len(samples) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(samples, kind="stable")
    values, cum = samples[order], np.cumsum(weights[order].astype(np.float64))
    targets = cum[-1] * np.arange(1, ranks) / ranks
    at = np.minimum(np.searchsorted(cum, targets, side="left"), len(values) - 1)
    return values[at].astype(np.int64)


def owners(keys: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """The owning rank of every key (keys sorted: the result is non-decreasing)."""
    return np.searchsorted(cuts, keys, side="right")


def bounds(keys: np.ndarray, cuts: np.ndarray, ranks: int) -> np.ndarray:
    """For sorted ``keys``: ``[b[r], b[r+1])`` are the rows owned by rank r (``ranks + 1`` entries)."""
    inner = np.searchsorted(keys, cuts, side="right")
    return np.concatenate([[0], inner, [len(keys)]]).astype(np.int64)
