"""HDF5 datasets through serial h5py: every rank opens the file read-only and reads its own rows.

Reads copy as little as possible. For an uncompressed dataset in native byte order, HDF5's own
metadata gives each chunk's (or the contiguous block's) byte offset, and the rows are read with one
``pread`` straight into the reused shard buffer; HDF5 does not allocate and copy every chunk. Any
other layout (filters, partial-width chunks, non-native byte order, unallocated chunks) falls back
to ``read_direct``, which is always correct.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from hpcdist.errors import UserError
from hpcdist.sources.base import Source, check_not_empty, check_numeric, file_identity, pread_into

TABLE_AFTER = 20   # walk all chunks' offsets once a rank has looked up 1/20 of them one by one


class HDF5Source(Source):
    def __init__(self, path: str, dataset: str) -> None:
        self.path, self.dataset = path, dataset
        self.spec = f"{path}:{dataset}"
        if not os.path.exists(path):
            raise UserError(f"{path}: no such file")
        if not h5py.is_hdf5(path):
            raise UserError(f"{path}: not an HDF5 file")
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise UserError(f"{path}: cannot open HDF5 file ({exc})") from None
        try:
            obj = self._file.get(dataset)
            if obj is None:
                raise UserError(f"{path}: no dataset {dataset!r}{_available(self._file)}")
            if not isinstance(obj, h5py.Dataset):
                raise UserError(f"{path}:{dataset} is a group, not a dataset{_available(obj)}")
            where = f"{path}:{dataset}"
            check_not_empty(obj.shape, where)
            self.dtype = check_numeric(obj.dtype, where).newbyteorder("=")  # HDF5 converts on read
        except UserError:
            self._file.close()
            raise
        self._ds = obj
        self.rows = int(obj.shape[0])
        self.row_shape = tuple(int(s) for s in obj.shape[1:])
        self.chunk_rows = int(obj.chunks[0]) if obj.chunks else 1
        self._offset = self._contiguous_offset()
        self._chunked_raw = self._offset is None and self._chunks_are_raw_rows()
        self._fd = os.open(path, os.O_RDONLY) if (self._offset is not None or self._chunked_raw) else -1
        self._table: np.ndarray | bool | None = None
        self._lookups = 0

    def _contiguous_offset(self) -> int | None:
        if self._ds.chunks is not None or not self._ds.dtype.isnative:
            return None
        return self._ds.id.get_offset()

    def _chunks_are_raw_rows(self) -> bool:
        """Chunks hold whole rows, unfiltered, native order: each is a plain run of bytes."""
        ds = self._ds
        return (
            ds.chunks is not None
            and tuple(ds.chunks[1:]) == self.row_shape
            and ds.id.get_create_plist().get_nfilters() == 0
            and self._ds.dtype.isnative
        )

    def read(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        buf = out[: stop - start]
        if self._offset is not None:
            pread_into(self._fd, buf, self._offset + start * self.row_bytes)
        elif self._chunked_raw:
            self._read_raw_chunks(start, stop, buf)
        else:
            self._ds.read_direct(buf, np.s_[start:stop], np.s_[0 : stop - start])
        return buf

    def _read_raw_chunks(self, start: int, stop: int, buf: np.ndarray) -> None:
        """Rows [start, stop) chunk by chunk; chunks that follow each other in the file are read
        with one pread (their offsets come from a table built once, see _chunk_table)."""
        cr, rb = self.chunk_rows, self.row_bytes
        table = self._chunk_table()
        row = start
        while row < stop:
            first = row - row % cr
            end = min(first + cr, stop)
            offset = self._chunk_offset(first, table)
            part = buf[row - start : end - start]
            if offset < 0:  # never written: HDF5 supplies the fill value
                self._ds.read_direct(part, np.s_[row:end], np.s_[0 : end - row])
            else:
                if table is not None:  # extend over the chunks stored right after this one
                    while end < stop and table[end // cr] == offset + (end - first) * rb:
                        end = min(end + cr, stop)
                    part = buf[row - start : end - start]
                pread_into(self._fd, part, offset + (row - first) * rb)
            row = end

    def _chunk_offset(self, first_row: int, table: np.ndarray | None) -> int:
        if table is not None:
            return int(table[first_row // self.chunk_rows])
        self._lookups += 1
        info = self._ds.id.get_chunk_info_by_coord((first_row, *(0,) * len(self.row_shape)))
        return -1 if info.byte_offset is None else int(info.byte_offset)

    def _chunk_table(self) -> np.ndarray | None:
        """File offset of every chunk (-1: never written) from one H5Dchunk_iter walk, ~2 us a chunk
        where H5Dget_chunk_info_by_coord costs ~40 us. Built once this rank has looked up
        1/TABLE_AFTER of the chunks one by one, so a rank that reads only a few chunks of a huge
        dataset never walks them all; None until then (or if this HDF5 has no chunk_iter)."""
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
                self._table = table
            except Exception:  # noqa: BLE001 - no chunk_iter in this h5py/HDF5: keep looking up
                pass
        return self._table if self._table is not False else None

    def take(self, indices: np.ndarray) -> np.ndarray:
        if len(indices) == 0:
            return self.empty(0)
        return self._ds[np.asarray(indices, dtype=np.int64)]

    def describe(self) -> dict:
        return {**super().describe(), **file_identity(self.path), "dataset": self.dataset}

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._file.id.valid:
            self._file.close()


def _available(group: h5py.Group) -> str:
    """A hint listing the datasets a user could have meant."""
    names: list[str] = []
    prefix = group.name.rstrip("/")

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and len(names) < 6:
            names.append(f"{prefix}/{name}")

    group.visititems(visit)
    if not names:
        return " (the file has no datasets)"
    more = ", ..." if len(names) > 5 else ""
    return f"; datasets here: {', '.join(names[:5])}{more}"
