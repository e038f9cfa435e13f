"""Where an HDF5 dataset's bytes live, and the proof that a ``pread`` there reads what h5py reads.

The fast path takes the contiguous block's or each chunk's byte offset from HDF5's own metadata
and ``pread``s the stored bytes straight into the shard buffer. That is right only when the bytes
are plain rows in the very file the descriptor opened, so :meth:`RawRows.open` proves each
condition and returns None when any fails (the source then reads through h5py, always right):

- the dataset lives in the file the descriptor opened: after an external link that is another file,
  so the descriptor opens ``ds.file.filename`` and its inode must equal that of the handle HDF5
  itself reads through;
- its raw data is in that file: no external raw storage, not a virtual dataset;
- the bytes are plain rows: contiguous or chunked (chunks of whole rows) layout, no filter, and a
  file type equal (``H5Tequal``) to the numpy dtype the rows are read as;
- a self-check at open time: the first stored row read with ``pread`` equals h5py's bytes for it
  (this catches, for example, offsets relative to a userblock instead of the file start).

Chunks never written are read through h5py, which supplies the fill value.
"""

from __future__ import annotations

import os
from typing import Callable

import h5py
import numpy as np

from hpcdist.sources.base import pread_into

TABLE_AFTER = 20   # walk all chunks' offsets once a rank has looked up 1/20 of them one by one

ReadRows = Callable[[int, int, np.ndarray], None]   # (start, stop, into): h5py reads rows [start, stop)


class RawRows:
    """Rows of one dataset read with ``pread`` at the offsets HDF5's metadata gives."""

    def __init__(self, ds: h5py.Dataset, fd: int, contiguous: int | None, chunk_rows: int) -> None:
        self._ds, self.fd, self.contiguous, self.chunk_rows = ds, fd, contiguous, chunk_rows
        self.row_bytes = int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize
        self.rows = int(ds.shape[0])
        self._table: np.ndarray | bool | None = None
        self._lookups = 0

    @property
    def kind(self) -> str:
        return "pread contiguous" if self.contiguous is not None else "pread chunks"

    @classmethod
    def open(cls, ds: h5py.Dataset) -> "RawRows | None":
        """The fast path for ``ds``, or None where it cannot be proven to read the right bytes."""
        if why_not_raw(ds) is not None:
            return None
        fd = _open_same_file(ds)
        if fd < 0:
            return None
        contiguous = None if ds.chunks else int(ds.id.get_offset())
        raw = cls(ds, fd, contiguous, int(ds.chunks[0]) if ds.chunks else 1)
        if raw.self_check():
            return raw
        raw.close()
        return None

    def read(self, start: int, stop: int, into: np.ndarray, h5py_rows: ReadRows) -> None:
        """Stored bytes of rows ``[start, stop)`` into ``into`` (C-contiguous, the stored dtype)."""
        if self.contiguous is not None:
            pread_into(self.fd, into, self.contiguous + start * self.row_bytes)
        else:
            self._read_chunks(start, stop, into, h5py_rows)

    def _read_chunks(self, start: int, stop: int, into: np.ndarray, h5py_rows: ReadRows) -> None:
        """Chunk by chunk; chunks that follow each other in the file are read with one pread
        (their offsets come from a table built once, see _chunk_table)."""
        cr, rb = self.chunk_rows, self.row_bytes
        table = self._chunk_table()
        row = start
        while row < stop:
            first = row - row % cr
            end = min(first + cr, stop)
            offset = self._chunk_offset(first, table)
            if offset < 0:  # never written: h5py supplies the fill value
                h5py_rows(row, end, into[row - start : end - start])
            else:
                if table is not None:  # extend over the chunks stored right after this one
                    while end < stop and table[end // cr] == offset + (end - first) * rb:
                        end = min(end + cr, stop)
                pread_into(self.fd, into[row - start : end - start], offset + (row - first) * rb)
            row = end

    def _chunk_offset(self, first_row: int, table: np.ndarray | None) -> int:
        if table is not None:
            return int(table[first_row // self.chunk_rows])
        self._lookups += 1
        info = self._ds.id.get_chunk_info_by_coord((first_row, *(0,) * (self._ds.ndim - 1)))
        return -1 if info.byte_offset is None else int(info.byte_offset)

    def _chunk_table(self) -> np.ndarray | None:
        """File offset of every chunk (-1: never written) from one H5Dchunk_iter walk, ~2 us a chunk
        where H5Dget_chunk_info_by_coord costs ~40 us. Built once this rank has looked up
        1/TABLE_AFTER of the chunks one by one, so a rank that reads only a few chunks of a huge
        dataset never walks them all; None until then (or if this HDF5 has no chunk_iter, or its
        offsets disagree with the one-by-one lookup)."""
        if self._table is None:
            chunks = -(-self.rows // self.chunk_rows)
            if self._lookups * TABLE_AFTER < chunks:
                return None
            self._table = False
            table = np.full(chunks, -1, np.int64)
            cr = self.chunk_rows

            def visit(info) -> None:
                if info.byte_offset is not None:
                    table[info.chunk_offset[0] // cr] = info.byte_offset

            try:
                self._ds.id.chunk_iter(visit)
            except Exception:  # noqa: BLE001 - no chunk_iter in this h5py/HDF5: keep looking up
                return None
            first = int(np.argmax(table >= 0)) if (table >= 0).any() else -1
            if first < 0 or table[first] == self._chunk_offset(first * cr, None):
                self._table = table
        return self._table if self._table is not False else None

    def self_check(self) -> bool:
        """The first stored row (and, contiguous, the last row) read with pread equals h5py's."""
        if self.contiguous is not None:
            rows = {0, self.rows - 1}
        else:
            if self._ds.id.get_num_chunks() == 0:
                return False        # nothing written: h5py's fill values are all there is
            rows = {int(self._ds.id.get_chunk_info(0).chunk_offset[0])}
        for row in sorted(rows):
            mine = np.empty((1, *self._ds.shape[1:]), dtype=self._ds.dtype)
            theirs = np.empty_like(mine)
            try:
                self.read(row, row + 1, mine, lambda a, b, into: self._ds.read_direct(into, np.s_[a:b]))
                self._ds.read_direct(theirs, np.s_[row : row + 1])
            except OSError:
                return False
            if mine.tobytes() != theirs.tobytes():
                return False
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def why_not_raw(ds: h5py.Dataset) -> str | None:
    """Why ``ds``'s rows are not plain bytes in its own file (None: they are)."""
    dcpl = ds.id.get_create_plist()
    if ds.is_virtual:
        return "virtual dataset"
    if dcpl.get_external_count() > 0:
        return "external raw storage"
    if ds.id.get_type() != h5py.h5t.py_create(ds.dtype):
        return "file type differs from the numpy dtype"
    layout = dcpl.get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        return None if ds.id.get_offset() is not None else "contiguous storage never written"
    if layout != h5py.h5d.CHUNKED:
        return "compact layout" if layout == h5py.h5d.COMPACT else f"layout {layout}"
    if dcpl.get_nfilters() > 0:
        return "filtered chunks"
    if tuple(ds.chunks[1:]) != tuple(ds.shape[1:]):
        return "chunks split rows"
    return None


def _open_same_file(ds: h5py.Dataset) -> int:
    """A read-only descriptor of the file ``ds`` lives in, proven to be the file HDF5 reads
    (same device and inode as HDF5's own handle); -1 if that cannot be shown."""
    try:
        theirs = os.fstat(ds.file.id.get_vfd_handle())
        fd = os.open(ds.file.filename, os.O_RDONLY)
    except (OSError, ValueError, TypeError):   # a driver without a POSIX handle, a vanished file
        return -1
    mine = os.fstat(fd)
    if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
        os.close(fd)
        return -1
    return fd


def dataset_files(root: h5py.File, dataset: str, ds: h5py.Dataset) -> list[str]:
    """Every real file reading ``dataset`` touches: the files its path runs through (external
    links), its external raw storage files and its virtual sources' files."""
    found: list[str] = [root.filename]
    parts = [p for p in dataset.split("/") if p]
    for i in range(1, len(parts) + 1):
        found.append(root["/" + "/".join(parts[:i])].file.filename)
    home = ds.file.filename
    dcpl = ds.id.get_create_plist()
    if dcpl.get_external_count() > 0:
        prefix = _prefix("HDF5_EXTFILE_PREFIX", ds.id.get_access_plist().get_efile_prefix(), home)
        for i in range(dcpl.get_external_count()):
            found.extend(_candidates(os.fsdecode(dcpl.get_external(i)[0]), prefix, None))
    if ds.is_virtual:
        dapl = ds.id.get_access_plist()
        prefix = _prefix("HDF5_VDS_PREFIX", dapl.get_virtual_prefix(), home)
        for source in ds.virtual_sources():
            name = source.file_name
            found.extend([home] if name == "." else _candidates(name, prefix, os.path.dirname(home)))
    return list(dict.fromkeys(os.path.realpath(p) for p in found))


def _prefix(env: str, prop: bytes, home: str) -> str | None:
    text = os.environ.get(env) or os.fsdecode(prop or b"")
    return text.replace("${ORIGIN}", os.path.dirname(os.path.abspath(home))) if text else None


def _candidates(name: str, prefix: str | None, beside: str | None) -> list[str]:
    """Where HDF5 may find a relatively named file: under the prefix, beside the file that names
    it, in the working directory (every existing one is listed: listing one too many is safe)."""
    if os.path.isabs(name):
        return [name]
    places = [os.path.join(p, name) for p in (prefix, beside) if p is not None] + [name]
    return [p for p in places if os.path.exists(p)] or [name]
