"""Exact per-column statistics kernels: the same bits on every CPU, at numba speed.

Two kernels, one call per shard (see docs/kernels.md for why and how they work):

- :func:`column_stats` -- count, NaN count, sum, mean, M2, min, max and a histogram that equals
  ``numpy.histogram`` bin for bin, for each column;
- :func:`finite_range` -- each column's min and max over its finite values.

Both take a 1-D (one column) or 2-D ``(rows, columns)`` array of bool, signed or unsigned
integers, float16, float32 or float64, in any byte order and memory layout. Values are widened to
float64 one by one (exact for floats and for integers up to 2**53), so a float32 column gives the
statistics of its exact float64 values. The machinery lives in private modules: ``_ir`` and
``_intrinsics`` (the 8-lane LLVM IR loops), ``_blocks`` (walking a shard), ``_bins`` (numpy's
bins), ``_moments`` and ``_range`` (the two kernels). This package does not import mpi4py: it
sits beside ``partials`` below the runtime, and works in any process.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from hpcdist.kernels._blocks import BLOCK_ROWS
from hpcdist.kernels._cache import lean_load
from hpcdist.kernels._ir import LANES
from hpcdist.kernels._moments import shard_stats as _shard_stats
from hpcdist.kernels._range import finite_range as _finite_range

__all__ = ["ColumnStats", "Range", "column_stats", "finite_range", "lean_load", "LANES", "BLOCK_ROWS", "MAX_BINS"]

MAX_BINS = 2**31 - 1        # bin indices travel as 32-bit lanes

lean_load(_shard_stats)     # the two entry points called from Python: loaded without numba's
lean_load(_finite_range)    # compiler start-up (see _cache); their callees are linked inside them


class ColumnStats(NamedTuple):
    """One shard's statistics, one entry per column (NaNs are counted, then left out).

    ``m2`` is the sum of squared deviations from the mean (variance = m2 / count); ``min`` and
    ``max`` are +inf and -inf, ``sum``, ``mean`` and ``m2`` 0 for a column with no value.
    ``hist[j]`` counts column j's values in [lo[j], hi[j]] as numpy.histogram does.
    """

    count: np.ndarray       # (c,) int64
    nan_count: np.ndarray   # (c,) int64
    sum: np.ndarray         # (c,) float64
    mean: np.ndarray        # (c,) float64
    m2: np.ndarray          # (c,) float64
    min: np.ndarray         # (c,) float64, NaN ignored, +-inf included
    max: np.ndarray         # (c,) float64
    hist: np.ndarray        # (c, bins) int64


class Range(NamedTuple):
    """Each column's min and max over its finite values (+inf and -inf where there are none)."""

    min: np.ndarray         # (c,) float64
    max: np.ndarray         # (c,) float64


def column_stats(x: ArrayLike, lo: ArrayLike, hi: ArrayLike, bins: int) -> ColumnStats:
    """Statistics and histogram of each column of ``x``, exact and the same on every CPU.

    Args:
        x: a 1-D array (one column) or a 2-D array (rows, columns); see the module docstring for
            the dtypes.
        lo, hi: the histogram range, one value per column or one for all; lo <= hi (not NaN).
        bins: the number of equal-width bins, 1 <= bins <= MAX_BINS.

    Returns:
        A :class:`ColumnStats` of new arrays (nothing refers to ``x``).

    Raises:
        TypeError: ``x`` is not a real-number array (complex, long double, strings, objects).
        ValueError: ``x`` is not 1-D or 2-D, or lo, hi or bins are out of range.
    """
    x = _columns(x)
    c = x.shape[1]
    lo = _per_column(lo, c, "lo")
    hi = _per_column(hi, c, "hi")
    if not (lo <= hi).all():
        raise ValueError(f"lo and hi must be numbers with lo <= hi, got lo={lo} hi={hi}")
    if isinstance(bins, (bool, np.bool_)) or not isinstance(bins, (int, np.integer)) \
            or not 1 <= bins <= MAX_BINS:
        raise ValueError(f"bins must be an integer from 1 to {MAX_BINS}, got {bins!r}")
    return ColumnStats(*_shard_stats(x, lo, hi, int(bins)))


def finite_range(x: ArrayLike) -> Range:
    """Each column's min and max over its finite values (NaN and +-inf skipped).

    Args:
        x: a 1-D array (one column) or a 2-D array (rows, columns).

    Raises:
        TypeError, ValueError: as :func:`column_stats`.
    """
    return Range(*_finite_range(_columns(x)))


def _columns(x: ArrayLike) -> np.ndarray:
    """``x`` as a 2-D array of a dtype the kernels compile for, copied only when it must be."""
    x = np.asarray(x)
    if x.ndim not in (1, 2):
        raise ValueError(f"expected a 1-D or 2-D array, got shape {x.shape}")
    kind, size = x.dtype.kind, x.dtype.itemsize
    if kind not in "biuf" or (kind == "f" and size > 8):
        raise TypeError(f"expected bool, integer or float (at most 64-bit) values, got {x.dtype}")
    if not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))
    if kind == "b":
        x = x.view(np.uint8)
    elif kind == "f" and size == 2:
        x = x.astype(np.float32)                # exact; numba has no float16
    return x if x.ndim == 2 else x.reshape(x.shape[0], 1)


def _per_column(value: ArrayLike, c: int, name: str) -> np.ndarray:
    """A contiguous float64 (c,) array from one value or c values."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape not in ((), (c,)):
        raise ValueError(f"{name} must be one value or {c} values (one per column), got shape {arr.shape}")
    return np.ascontiguousarray(arr) if arr.ndim else np.full(c, arr)
