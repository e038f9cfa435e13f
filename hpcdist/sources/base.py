"""What every data source offers the runtime: shape, dtype, alignment, and reads of row ranges."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from hpcdist.errors import UserError


class Source(ABC):
    """Rows along axis 0 of a dataset; every rank opens its own read-only handle.

    ``chunk_rows`` is the row alignment that makes reads cheap (HDF5 chunk height, synthetic block
    size, or 1): the shard planner puts shard boundaries on its multiples.
    """

    spec: str
    rows: int
    row_shape: tuple[int, ...]
    dtype: np.dtype
    chunk_rows: int = 1

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.rows * self.row_bytes

    def empty(self, rows: int) -> np.ndarray:
        """A C-contiguous buffer for ``rows`` rows, reused across shards."""
        return np.empty((rows, *self.row_shape), dtype=self.dtype)

    @abstractmethod
    def read(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """Rows ``[start, stop)`` into ``out[: stop - start]`` (or a view equal to it); returns it."""

    def take(self, indices: np.ndarray) -> np.ndarray:
        """The rows at sorted ``indices`` (small samples, e.g. k-means++ initialisation)."""
        out = self.empty(1)
        rows = [self.read(int(i), int(i) + 1, out).copy() for i in indices]
        return np.concatenate(rows) if rows else self.empty(0)

    def describe(self) -> dict[str, Any]:
        """What identifies the data (recorded in outputs; checkpoints fingerprint it)."""
        return {"input": self.spec, "rows": self.rows, "row_shape": list(self.row_shape),
                "dtype": self.dtype.str}

    def close(self) -> None:
        """Release file handles."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_numeric(dtype: np.dtype, where: str) -> np.dtype:
    if dtype.kind not in "iuf":
        raise UserError(f"{where}: dtype {dtype} is not numeric (expected integer or float)")
    return dtype


def check_not_empty(shape: tuple[int, ...], where: str) -> None:
    if len(shape) == 0:
        raise UserError(f"{where}: is a scalar, expected at least 1 dimension (rows)")
    if shape[0] == 0 or any(s == 0 for s in shape[1:]):
        raise UserError(f"{where}: is empty (shape {shape})")


def file_identity(path: str) -> dict[str, Any]:
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def pread_into(fd: int, buf: np.ndarray, offset: int) -> None:
    """Fill ``buf`` (C-contiguous) from file offset ``offset``: one copy, page cache to buffer."""
    view = memoryview(buf.reshape(-1).view(np.uint8))
    done = 0
    total = len(view)
    while done < total:
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise OSError(f"unexpected end of file at byte {offset + done}")
        done += got
