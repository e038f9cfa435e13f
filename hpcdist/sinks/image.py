"""The output file's HDF5 structure, built by h5py in memory; the row bytes go straight to disk.

Why: serial h5py cannot take writes from many processes, but a contiguous dataset allocated early
is one plain byte range of the file (``get_offset()``), so every rank can ``pwrite`` its own rows
there (the mirror of :mod:`hpcdist.sources.hdf5_layout`'s zero-copy read). HDF5 only ever writes
into :class:`SparseImage`, an in-memory file that holds what HDF5 wrote (metadata: kilobytes) and
never the unwritten data ranges; the pieces then go to disk with ``os.pwrite``, so a full disk is
an ordinary OSError (one line, exit 1), as for results (:mod:`hpcdist.h5image`). The layout is a
pure function of the names, dtypes and shapes, so every rank computes the same offsets alone.
"""

from __future__ import annotations

import io
import os
from typing import Callable, Mapping

import h5py
import numpy as np

DatasetShape = tuple[np.dtype, tuple[int, ...]]      # dtype, full shape (rows first)
ROWS_MARK = "hpcdist_rows"   # on each written dataset: "same" or "filter" (results have none)
ALIGN = 1 << 20      # datasets of 1 MiB or more start on a 1 MiB boundary: shards whose bytes are
                     # whole pages (or stripes) never share one with another rank's shard


class SparseImage(io.RawIOBase):
    """A file object for h5py's ``fileobj`` driver that keeps only the bytes written to it."""

    def __init__(self, base: Callable[[int, int], bytes] | None = None) -> None:
        super().__init__()
        self.writes: list[tuple[int, bytes]] = []
        self.size = 0
        self.pos = 0
        self.base = base     # reads of ranges never written here (an existing file on disk)

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = pos if whence == 0 else (self.pos + pos if whence == 1 else self.size + pos)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def truncate(self, size: int | None = None) -> int:
        self.size = self.pos if size is None else size
        return self.size

    def readinto(self, buf) -> int:   # type: ignore[override]
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self.size - self.pos))
        start, stop = self.pos, self.pos + n
        view[:n] = self.base(start, n) if self.base is not None else bytes(n)
        for at, data in self.writes:
            lo, hi = max(at, start), min(at + len(data), stop)
            if lo < hi:
                view[lo - start: hi - start] = data[lo - at: hi - at]
        self.pos = stop
        return n

    def write(self, data) -> int:   # type: ignore[override]
        piece = bytes(data)
        self.writes.append((self.pos, piece))
        self.pos += len(piece)
        self.size = max(self.size, self.pos)
        return len(piece)

    def to_disk(self, fd: int) -> None:
        """Every write, in order (later ones win), and the file's final length."""
        for at, data in self.writes:
            view = memoryview(data)
            while view:
                view = view[os.pwrite(fd, view, at + len(data) - len(view)):]
        if os.fstat(fd).st_size < self.size:
            os.ftruncate(fd, self.size)


def add_datasets(f: h5py.File, datasets: Mapping[str, DatasetShape]) -> dict[str, int]:
    """Contiguous datasets allocated now and never filled by HDF5; their byte offsets (-1 if empty)."""
    offsets = {}
    for name, (dtype, shape) in datasets.items():
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.CONTIGUOUS)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        space = h5py.h5s.create_simple(tuple(int(n) for n in shape))
        dsid = h5py.h5d.create(f.id, name.encode(), h5py.h5t.py_create(np.dtype(dtype)), space, dcpl=dcpl)
        offset = dsid.get_offset()
        offsets[name] = -1 if offset is None else int(offset)
    return offsets


def layout(datasets: Mapping[str, DatasetShape]) -> dict[str, int]:
    """Where each dataset's bytes will be in the output file (the same on every rank)."""
    image = SparseImage()
    with _open(image) as f:
        return add_datasets(f, datasets)


def complete(fd: int, datasets: Mapping[str, DatasetShape], fill: Callable[[h5py.File], None],
             marks: Mapping[str, str] | None = None) -> dict[str, int]:
    """Rank 0, at the end: the file's structure (datasets, then what ``fill`` adds) written into
    ``fd`` around the rows already there. ``marks``: each dataset's ``ROWS_MARK`` attribute (an
    attribute lives in the object header: the data does not move). Returns the offsets, which
    must equal :func:`layout`'s."""
    image = SparseImage()
    with _open(image) as f:
        offsets = add_datasets(f, datasets)
        for name, mark in (marks or {}).items():
            f[name].attrs[ROWS_MARK] = mark
        fill(f)
    image.to_disk(fd)
    return offsets


def _open(image: SparseImage) -> h5py.File:
    return h5py.File(image, "w", track_order=True, alignment_threshold=ALIGN, alignment_interval=ALIGN)
