"""Many files as one input: ``'dir/part-*.h5:/x'``, ``'dir/part-*.npy'``, ``@files.txt:/x``.

Rows are concatenated in file order (sorted names for a glob, the list's order for ``@file``); a
shard is a range of these logical rows and may cross file boundaries. Why lazily: runs read
thousands of parts, so a file is opened only when a shard needs its rows and closed as soon as a
read moves past it (at most one part is open per rank). Every part's shape and dtype must agree;
in a run only rank 0 checks that, once (see :class:`MultiSource`).
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


Agree = Callable[[Callable[[], Any]], Any]      # World.agree: rank 0 decides, every rank gets it


class MultiSource(Source):
    """The concatenated rows of ``file_part``'s files, each opened with ``opener`` (HDF5 or .npy).

    With ``agree`` (``World.agree``), rank 0 alone lists the files and reads every part's rows,
    size and mtime, and the other ranks get that table (O(files) numbers) instead of each opening
    every part: thousands of parts times thousands of ranks would be a metadata storm. Every rank
    then opens only the first part (dtype, row shape) and the parts its shards read.
    """

    def __init__(self, spec: str, file_part: str, opener: Opener, agree: Agree | None = None) -> None:
        self.spec, self._opener = spec, opener
        table = agree(lambda: _scan(spec, file_part, opener)) if agree else _scan(spec, file_part, opener)
        self.paths = [path for path, _, _, _ in table]
        self._identity = [[os.path.abspath(path), size, mtime] for path, _, size, mtime in table]
        with opener(self.paths[0]) as first:
            self.row_shape, self.dtype = first.row_shape, first.dtype
            self.conversion, self._stored = first.conversion, first.stored_dtype
        self._starts = [0, *np.cumsum([rows for _, rows, _, _ in table]).tolist()]   # where each part begins
        self.rows = self._starts[-1]
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
        return {**super().describe(), "files": self._identity}

    def close(self) -> None:
        self._close_open()


def _scan(spec: str, file_part: str, opener: Opener) -> list[tuple[str, int, int, int]]:
    """(path, rows, size, mtime_ns) of every part, in order; parts that disagree are a UserError."""
    table: list[tuple[str, int, int, int]] = []
    first: Source | None = None
    for path in expand(file_part, spec):
        with opener(path) as part:
            if first is None:
                first = part
            else:
                _check_agrees(spec, part, path, first, table[0][0])
            st = os.stat(path)
            table.append((path, part.rows, st.st_size, st.st_mtime_ns))
    return table


def _check_agrees(spec: str, part: Source, path: str, first: Source, first_path: str) -> None:
    if part.row_shape != first.row_shape:
        raise UserError(f"{path}: rows of shape {part.row_shape}, but {first_path} has rows of shape "
                        f"{first.row_shape} (every file of {spec} must agree)")
    if part.stored_dtype != first.stored_dtype:
        raise UserError(f"{path}: dtype {part.stored_dtype}, but {first_path} has dtype "
                        f"{first.stored_dtype} (every file of {spec} must agree)")
