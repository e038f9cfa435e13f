"""Seeded synthetic data that is the same at any rank count, and row-only "range" sources.

Rows are generated in fixed blocks of ``BLOCK_ROWS``; block ``b`` of seed ``s`` comes from a Philox
counter-based generator keyed by ``(s, b)``. Any rank can therefore produce any rows on its own, and
the dataset depends only on the seed, never on how rows are split across shards or ranks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hpcdist.errors import UserError
from hpcdist.sources.base import Source

BLOCK_ROWS = 4096
DISTRIBUTIONS = ("normal", "uniform", "int")
_DTYPES = ("float32", "float64", "int32", "int64")


class SyntheticSource(Source):
    """``synthetic:rows=N[,cols=C][,dtype=float64][,seed=0][,dist=normal][,nan=0.0]``."""

    def __init__(self, rows: int, cols: int = 1, dtype: str = "float64", seed: int = 0,
                 dist: str = "normal", nan: float = 0.0) -> None:
        if rows < 1:
            raise UserError(f"synthetic: rows must be >= 1, got {rows}")
        if cols < 1:
            raise UserError(f"synthetic: cols must be >= 1, got {cols}")
        if dtype not in _DTYPES:
            raise UserError(f"synthetic: dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        if dist not in DISTRIBUTIONS:
            raise UserError(f"synthetic: dist must be one of {', '.join(DISTRIBUTIONS)}, got {dist!r}")
        if not 0.0 <= nan <= 1.0:
            raise UserError(f"synthetic: nan must be a fraction in [0, 1], got {nan}")
        if nan and dtype.startswith("int"):
            raise UserError("synthetic: nan needs a float dtype")
        self.rows, self.cols, self.seed, self.dist, self.nan = rows, cols, seed, dist, nan
        self.dtype = np.dtype(dtype)
        self.row_shape = (cols,) if cols != 1 else ()
        self.chunk_rows = BLOCK_ROWS
        self.spec = (f"synthetic:rows={rows},cols={cols},dtype={dtype},seed={seed},dist={dist}"
                     + (f",nan={nan}" if nan else ""))

    def block(self, b: int) -> np.ndarray:
        """Rows ``[b*BLOCK_ROWS, ...)`` of the dataset, always the same for the same seed."""
        n = min(BLOCK_ROWS, self.rows - b * BLOCK_ROWS)
        rng = np.random.Generator(np.random.Philox(key=np.array([self.seed, b], dtype=np.uint64)))
        shape = (n, *self.row_shape)
        if self.dist == "normal":
            data = rng.standard_normal(shape, dtype=self.dtype) if self.dtype.kind == "f" else \
                np.rint(rng.standard_normal(shape) * 100).astype(self.dtype)
        elif self.dist == "uniform":
            data = rng.random(shape, dtype=self.dtype) if self.dtype.kind == "f" else \
                rng.integers(0, 2**31 - 1, shape, dtype=self.dtype)
        else:
            data = rng.integers(-1000, 1000, shape).astype(self.dtype)
        if self.nan:
            data[rng.random(shape) < self.nan] = np.nan
        return data

    def read(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        buf = out[: stop - start]
        first, last = start // BLOCK_ROWS, (stop - 1) // BLOCK_ROWS
        for b in range(first, last + 1):
            lo, hi = max(start, b * BLOCK_ROWS), min(stop, (b + 1) * BLOCK_ROWS)
            buf[lo - start : hi - start] = self.block(b)[lo - b * BLOCK_ROWS : hi - b * BLOCK_ROWS]
        return buf

    def take(self, indices: np.ndarray) -> np.ndarray:
        out = self.empty(len(indices))
        for b in np.unique(np.asarray(indices) // BLOCK_ROWS):
            sel = np.nonzero(np.asarray(indices) // BLOCK_ROWS == b)[0]
            out[sel] = self.block(int(b))[np.asarray(indices)[sel] - b * BLOCK_ROWS]
        return out

    def files(self) -> list[str]:
        return []   # generated, no file read

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "seed": self.seed, "dist": self.dist}


class RangeSource(Source):
    """``range:N``: N rows with no stored values, for jobs that generate their own (Monte Carlo).

    Shards are empty ``(n, 0)`` arrays; the job works from ``ctx.start``/``ctx.stop``.
    """

    def __init__(self, rows: int) -> None:
        if rows < 1:
            raise UserError(f"range: rows must be >= 1, got {rows}")
        self.rows, self.row_shape, self.dtype = rows, (0,), np.dtype(np.float64)
        self.chunk_rows = 1
        self.spec = f"range:{rows}"

    def read(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        return out[: stop - start]

    def files(self) -> list[str]:
        return []
