"""``.npy`` files: the header gives the data's byte offset, so rows are read with one pread."""

from __future__ import annotations

import os

import numpy as np

from hpcdist.errors import UserError
from hpcdist.sources.base import Source, check_not_empty, check_numeric, file_identity, pread_into


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
        self.dtype = check_numeric(mm.dtype, path)
        self.rows = int(mm.shape[0])
        self.row_shape = tuple(int(s) for s in mm.shape[1:])
        self._mm = mm
        self._fast = mm.flags.c_contiguous and mm.dtype.isnative
        self._offset = int(mm.offset)
        self._fd = os.open(path, os.O_RDONLY) if self._fast else -1

    def read(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        buf = out[: stop - start]
        if self._fast:
            pread_into(self._fd, buf, self._offset + start * self.row_bytes)
        else:
            buf[...] = self._mm[start:stop]
        return buf

    def describe(self) -> dict:
        return {**super().describe(), **file_identity(self.path)}

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._mm = None
