"""HDF5 datasets through serial h5py: every rank opens the file read-only and reads its own rows.

Reads copy as little as possible: where the rows are provably plain bytes in the file HDF5 itself
reads (see :mod:`hpcdist.sources.hdf5_layout`), one ``pread`` per run of chunks puts them straight
into the reused shard buffer. Everything else (links into other files are fine; virtual datasets,
external raw storage, filters, compact layout, unusual file types) is read with ``read_direct``,
which is always right. Stored values are converted once per shard to what kernels take
(:mod:`hpcdist.sources.convert`), and rows that cannot be read are one line naming them.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from hpcdist.errors import UserError
from hpcdist.sources.base import Source, check_not_empty, file_identity, unreadable
from hpcdist.sources.convert import Conversion
from hpcdist.sources.hdf5_layout import RawRows, dataset_files


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
            self._ds = self._open_dataset()
            self._conv = Conversion(self._ds.dtype, self.spec)
            self._raw = RawRows.open(self._ds)
        except BaseException:
            self._file.close()
            raise
        self.dtype = self._conv.target
        self.conversion = self._conv.text
        self.rows = int(self._ds.shape[0])
        self.row_shape = tuple(int(s) for s in self._ds.shape[1:])
        self.chunk_rows = int(self._ds.chunks[0]) if self._ds.chunks else 1
        self.read_path = self._raw.kind if self._raw is not None else "h5py"   # for tests and tuning
        self._files: list[str] | None = None

    def _open_dataset(self) -> h5py.Dataset:
        path, dataset = self.path, self.dataset
        try:
            obj = self._file.get(dataset)
        except (KeyError, OSError) as exc:   # a dangling external or soft link
            raise UserError(f"{self.spec}: cannot be opened ({str(exc).splitlines()[0]})") from None
        if obj is None:
            raise UserError(_dangling(self._file, dataset, self.spec)
                            or f"{path}: no dataset {dataset!r}{_available(self._file)}")
        if not isinstance(obj, h5py.Dataset):
            raise UserError(f"{self.spec} is a group, not a dataset{_available(obj)}")
        check_not_empty(obj.shape, self.spec)
        enum = h5py.check_enum_dtype(obj.dtype)
        if enum is not None and obj.dtype.kind != "b":
            labels = sorted(enum, key=enum.get)[:4]
            raise UserError(f"{self.spec}: dtype enum ({obj.dtype}, labels {', '.join(labels)}) "
                            f"is not numeric (expected integers, floats or bools)")
        return obj

    @property
    def stored_dtype(self) -> np.dtype:
        return self._conv.stored

    def read(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        buf = out[: stop - start]
        raw = self._conv.raw(buf)
        try:
            if self._raw is not None:
                self._raw.read(start, stop, raw, self._h5py_rows)
            else:
                self._h5py_rows(start, stop, raw)
        except OSError as exc:
            raise unreadable(self.spec, *self._failing_rows(start, stop, exc), exc) from None
        return self._conv.finish(raw, buf)

    def _failing_rows(self, start: int, stop: int, exc: OSError) -> tuple[int, int]:
        """The first chunk's rows within [start, stop) that h5py cannot read (after a failure
        only), so the message names the damaged chunk rather than the whole shard."""
        if not self._ds.chunks or getattr(exc, "errno", None) is not None:
            return start, stop
        cr = self.chunk_rows
        probe = np.empty((cr, *self._ds.shape[1:]), dtype=self._ds.dtype)
        for first in range(start - start % cr, stop, cr):
            a, b = max(first, start), min(first + cr, stop)
            try:
                self._h5py_rows(a, b, probe[: b - a])
            except OSError:
                return a, b
        return start, stop

    def _h5py_rows(self, start: int, stop: int, into: np.ndarray) -> None:
        self._ds.read_direct(into, np.s_[start:stop], np.s_[0 : stop - start])

    def take(self, indices: np.ndarray) -> np.ndarray:
        if len(indices) == 0:
            return self.empty(0)
        indices = np.asarray(indices, dtype=np.int64)
        try:
            values = self._ds[indices]
        except OSError as exc:
            raise unreadable(self.spec, int(indices[0]), int(indices[-1]) + 1, exc) from None
        return np.ascontiguousarray(values, dtype=self.dtype)

    def files(self) -> list[str]:
        if self._files is None:
            self._files = dataset_files(self._file, self.dataset, self._ds)
        return list(self._files)

    def describe(self) -> dict:
        found = {**super().describe(), **file_identity(self.path), "dataset": self.dataset}
        linked = {p: [os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in self.files()[1:] if os.path.exists(p)}
        if linked:   # a resume must notice a change behind a link too
            found["linked_files"] = linked
        return found

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        if self._file.id.valid:
            self._file.close()


def _dangling(root: h5py.File, dataset: str, spec: str) -> str | None:
    """The message for a link that leads nowhere, or None if ``dataset`` is no link."""
    try:
        link = root.get(dataset, getlink=True)
    except (KeyError, OSError, ValueError):
        return None
    if isinstance(link, h5py.ExternalLink):
        return f"{spec}: external link to {link.filename}:{link.path} leads nowhere (no such file or dataset)"
    if isinstance(link, h5py.SoftLink):
        return f"{spec}: soft link to {link.path} leads nowhere"
    return None


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
