"""``.npy`` files: the header gives the data's byte offset, so rows are read with one pread.

Stored values are converted once per shard to what kernels take (:mod:`hpcdist.sources.convert`):
a big-endian file is read raw into the shard buffer and byte-swapped in place, float16 is read into
a reused scratch buffer and widened. Fortran-order files are copied row by row from a memmap.
"""

from __future__ import annotations

import os

import numpy as np

from hpcdist.errors import UserError
from hpcdist.sources.base import Source, check_not_empty, file_identity, pread_into, unreadable
from hpcdist.sources.convert import Conversion


class NpySource(Source):
    def __init__(self, path: str) -> None:
        self.spec = path
        self.path = path
        if not os.path.exists(path):
            raise UserError(f"{path}: no such file")
        try:
            mm = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserError(f"{path}: not a readable .npy file ({exc})") from None
        if not isinstance(mm, np.memmap):
            raise UserError(f"{path}: not a .npy array file")
        check_not_empty(mm.shape, path)
        self._conv = Conversion(mm.dtype, path)
        self.dtype = self._conv.target
        self.conversion = self._conv.text
        self.rows = int(mm.shape[0])
        self.row_shape = tuple(int(s) for s in mm.shape[1:])
        self._mm = mm
        self._fast = bool(mm.flags.c_contiguous)
        self._offset = int(mm.offset)
        self._stored_row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * mm.dtype.itemsize
        self._fd = os.open(path, os.O_RDONLY) if self._fast else -1

    @property
    def stored_dtype(self) -> np.dtype:
        return self._conv.stored

    def read(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        buf = out[: stop - start]
        if not self._fast:
            np.copyto(buf, self._mm[start:stop])
            return buf
        raw = self._conv.raw(buf)
        try:
            pread_into(self._fd, raw, self._offset + start * self._stored_row_bytes)
        except OSError as exc:
            raise unreadable(self.spec, start, stop, exc) from None
        return self._conv.finish(raw, buf)

    def files(self) -> list[str]:
        return [os.path.realpath(self.path)]

    def describe(self) -> dict:
        return {**super().describe(), **file_identity(self.path)}

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._mm = None
