"""The stats job's kernel (:func:`hpcdist.kernels.column_stats`) per block: the honest peers' work.

A competent user who wants per-column statistics from ``multiprocessing`` or dask does not write
numpy reductions per piece: they call the fastest kernel they have on each block. These functions
are that block task: read rows [start, stop) piece by piece into one buffer, run the same numba
kernel as hpcdist's stats job on each piece, and merge the pieces with Chan et al.'s update
(:func:`hpcdist.bench.numpy_stats.merge`). A worker process loads the kernel from numba's cache
once, in the warm-up round.
"""

from __future__ import annotations

import numpy as np

from hpcdist.bench.numpy_stats import block_pieces, fold_pieces, merge


def kernel_partial(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, bins: int) -> dict[str, np.ndarray]:
    """count, nan_count, sum, mean, M2, min, max, hist of each column of x (n, c), by the stats kernel."""
    from hpcdist.kernels import column_stats

    got = column_stats(x, lo, hi, bins)
    return {"count": got.count, "nan_count": got.nan_count, "sum": got.sum, "mean": got.mean, "m2": got.m2,
            "min": got.min, "max": got.max, "hist": got.hist}


def kernel_block_partial(path: str, dataset: str, start: int, stop: int, lo, hi, bins: int,
                         piece_rows: int) -> dict[str, np.ndarray] | None:
    """Rows [start, stop) of the dataset through the stats kernel, piece by piece (one task)."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    return fold_pieces(block_pieces(path, dataset, start, stop, piece_rows), kernel_partial, lo, hi, bins)


def merge_all(parts: list[dict[str, np.ndarray] | None]) -> dict[str, np.ndarray]:
    """Blocks' partials merged in row order."""
    got = [p for p in parts if p is not None]
    acc = got[0]
    for p in got[1:]:
        acc = merge(acc, p)
    return acc
