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
    dtype: np.dtype          # what kernels get: native byte order, a type kernels take
    chunk_rows: int = 1
    conversion: str = ""     # how stored values became ``dtype`` values ("" when they are the same)

    @property
    def stored_dtype(self) -> np.dtype:
        """The dtype as stored in the file (``dtype`` unless converted)."""
        return self.dtype

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

    @abstractmethod
    def files(self) -> list[str]:
        """Every real file (realpath) a read touches, so an output can be refused if it is one."""

    def describe(self) -> dict[str, Any]:
        """What identifies the data (recorded in outputs; checkpoints fingerprint it)."""
        return {"input": self.spec, "rows": self.rows, "row_shape": list(self.row_shape),
                "dtype": self.dtype.str, "stored_dtype": self.stored_dtype.str}

    def close(self) -> None:
        """Release file handles."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_not_empty(shape: tuple[int, ...], where: str) -> None:
    if len(shape) == 0:
        raise UserError(f"{where}: is a scalar, expected at least 1 dimension (rows)")
    if shape[0] == 0 or any(s == 0 for s in shape[1:]):
        raise UserError(f"{where}: is empty (shape {shape})")


def file_identity(path: str) -> dict[str, Any]:
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class TruncatedFile(OSError):
    """The file ends before the bytes its own metadata promises: a damaged or truncated input."""


def pread_into(fd: int, buf: np.ndarray, offset: int) -> None:
    """Fill ``buf`` (C-contiguous) from file offset ``offset``: one copy, page cache to buffer."""
    view = memoryview(buf.reshape(-1).view(np.uint8))
    done = 0
    total = len(view)
    while done < total:
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise TruncatedFile(f"the file ends at byte {offset + done}, before the data does")
        done += got


def unreadable(where: str, start: int, stop: int, exc: OSError) -> Exception:
    """The error for rows ``[start, stop)`` that could not be read, naming file, dataset and rows.

    Data that fails to decode (a corrupted chunk, a checksum mismatch, a truncated file) is bad
    input: a one-line UserError. An operating-system error (EIO) is an I/O failure and stays one.
    """
    what = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if exc.errno is not None and not isinstance(exc, TruncatedFile):
        return OSError(exc.errno, f"{where}: rows {start} to {stop - 1} cannot be read: {exc.strerror}")
    if any(word in what.lower() for word in ("filter", "checksum", "fletcher", "decompress", "inflate")):
        what = f"a chunk fails to decode ({what})"
    return UserError(f"{where}: rows {start} to {stop - 1} cannot be read: {what}")
