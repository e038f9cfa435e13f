"""Many files as one input: ``'dir/part-*.h5:/x'``, ``'dir/part-*.npy'``, ``@files.txt:/x``.

Rows are concatenated in file order (sorted names for a glob, the list's order for ``@file``); a
shard is a range of these logical rows and may cross file boundaries. Why lazily: runs read
thousands of parts, so a file is opened only when a shard needs its rows and closed as soon as a
read moves past it (at most one part is open per rank); opening every part up front only reads
its shape and dtype, which must agree across parts.
"""

from __future__ import annotations

import bisect
import glob
import os
from typing import Any, Callable

import numpy as np

from hpcdist.errors import UserError
from hpcdist.sources.base import Source

Opener = Callable[[str], Source]

PATTERN_CHARS = "*?["


def is_many(file_part: str) -> bool:
    """True for a glob pattern or an ``@list`` file part."""
    return file_part.startswith("@") or any(c in file_part for c in PATTERN_CHARS)


def expand(file_part: str, spec: str) -> list[str]:
    """The files a glob or ``@list`` names, in order; none is a one-line UserError."""
    if file_part.startswith("@"):
        listing = file_part[1:]
        try:
            with open(listing, encoding="utf-8") as fh:
                lines = [line.strip() for line in fh]
        except OSError as exc:
            raise UserError(f"{spec}: cannot read the file list {listing} ({exc.strerror})") from None
        base = os.path.dirname(listing)
        names = [line if os.path.isabs(line) else os.path.join(base, line)
                 for line in lines if line and not line.startswith("#")]
        if not names:
            raise UserError(f"{spec}: the file list {listing} names no files")
        return names
    names = sorted(glob.glob(file_part))
    if not names:
        raise UserError(f"{spec}: no file matches {file_part}")
    return names


class MultiSource(Source):
    """The concatenated rows of ``paths``, each opened with ``opener`` (an HDF5 or .npy source)."""

    def __init__(self, spec: str, paths: list[str], opener: Opener) -> None:
        self.spec, self.paths, self._opener = spec, list(paths), opener
        starts = [0]
        first: Source | None = None
        for path in self.paths:
            with opener(path) as part:
                if first is None:
                    first = part
                    self.row_shape, self.dtype = part.row_shape, part.dtype
                    self.conversion, self._stored = part.conversion, part.stored_dtype
                else:
                    _check_agrees(part, self, path, self.paths[0])
                starts.append(starts[-1] + part.rows)
        self._starts = starts            # logical row where each file begins (len(paths) + 1)
        self.rows = starts[-1]
        self.chunk_rows = 1
        self._open: tuple[int, Source] | None = None

    @property
    def stored_dtype(self) -> np.dtype:
        return self._stored

    def read(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        buf = out[: stop - start]
        row = start
        while row < stop:
            i = bisect.bisect_right(self._starts, row) - 1
            part = self._part(i)
            end = min(stop, self._starts[i + 1])
            lo = row - self._starts[i]
            got = part.read(lo, lo + end - row, buf[row - start:])
            if got is not None and not np.shares_memory(got, buf):
                buf[row - start: end - start] = got
            row = end
        return buf

    def _part(self, i: int) -> Source:
        if self._open is not None and self._open[0] == i:
            return self._open[1]
        self._close_open()
        part = self._opener(self.paths[i])
        self._open = (i, part)
        return part

    def _close_open(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None

    def files(self) -> list[str]:
        found: list[str] = []
        for path in self.paths:
            with self._opener(path) as part:
                found.extend(f for f in part.files() if f not in found)
        return found

    def describe(self) -> dict[str, Any]:
        identity = []
        for path in self.paths:
            st = os.stat(path)
            identity.append([os.path.abspath(path), st.st_size, st.st_mtime_ns])
        return {**super().describe(), "files": identity}

    def close(self) -> None:
        self._close_open()


def _check_agrees(part: Source, first: MultiSource, path: str, first_path: str) -> None:
    if part.row_shape != first.row_shape:
        raise UserError(f"{path}: rows of shape {part.row_shape}, but {first_path} has rows of shape "
                        f"{first.row_shape} (every file of {first.spec} must agree)")
    if part.stored_dtype != first.stored_dtype:
        raise UserError(f"{path}: dtype {part.stored_dtype}, but {first_path} has dtype "
                        f"{first.stored_dtype} (every file of {first.spec} must agree)")
