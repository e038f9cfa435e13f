"""Each rank's writer of row datasets: ``pwrite`` of its shards' bytes at offsets it computes.

The output is built at a hidden temporary name beside ``--output`` (one name, agreed by every rank
without a message: it is derived from the run's fingerprint, so a resumed run finds the rows its
predecessor made durable). Rank 0 adds the HDF5 structure, the reductions' results and the run
attributes at the end, then renames; every other rank has fsync'd its rows before its last partial
reached rank 0, so the file at the final path is always complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable, Mapping

import h5py
import numpy as np

from hpcdist import atomic
from hpcdist.errors import JobError, WriteFailed
from hpcdist.sinks.declare import Output
from hpcdist.sinks.image import DatasetShape, complete, layout

RowLayout = tuple[np.dtype, tuple[int, ...]]     # dtype, row shape


class RowsNotWritten(JobError):
    """This rank could not write or fsync its rows (a full disk, a quota, an I/O error).

    A JobError only in how it ends the run: the rank prints ``cannot write output PATH: REASON``
    and aborts every rank (exit 1), which no other rank could learn from a collective in time."""


def temp_name(output: str, fingerprint: Mapping[str, Any]) -> str:
    """The rows' temporary file: hidden, beside the output, the same for every rank and a resume."""
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()
    directory, prefix = atomic.temp_prefix(output)
    return os.path.join(directory, f"{prefix}rows-{digest[:16]}")


class RowSink:
    """The datasets one job writes, on one rank."""

    def __init__(self, job_path: str, outputs: Mapping[str, Output], output: str, temp: str,
                 keep: bool = False) -> None:
        self.job_path, self.outputs, self.output, self.temp = job_path, dict(outputs), output, temp
        self.keep = keep
        self.existed = False      # the temporary file was there when the run started (a resume)
        self.rows: dict[str, RowLayout] | None = None    # fixed by the declaration or the first rows
        self.totals: dict[str, int] = {}
        self.offsets: dict[str, int] = {}
        self.fd = -1
        self.dirty = False

    def fix(self, first: Mapping[str, np.ndarray]) -> None:
        """The datasets' dtypes and row shapes: declared, else what ``first`` holds."""
        rows = {}
        for name, out in self.outputs.items():
            arr = np.asarray(first[name])
            rows[name] = (out.dtype if out.dtype is not None else arr.dtype,
                          out.row_shape if out.row_shape is not None else tuple(arr.shape[1:]))
        self.rows = rows

    def place(self, totals: Mapping[str, int]) -> None:
        """The datasets' lengths, hence where their bytes go (the writing pass knows them all)."""
        self.totals = dict(totals)
        self.offsets = layout(self.datasets())

    def datasets(self) -> dict[str, DatasetShape]:
        assert self.rows is not None
        return {name: (dtype, (self.totals[name], *shape)) for name, (dtype, shape) in self.rows.items()}

    def checked(self, name: str, value: object, shard: int) -> np.ndarray:
        """``transform``'s rows for ``name``, as the declared/first layout says, or a JobError."""
        assert self.rows is not None
        dtype, shape = self.rows[name]
        arr = value if isinstance(value, np.ndarray) else None
        if arr is None or arr.dtype != dtype or arr.ndim < 1 or tuple(arr.shape[1:]) != shape:
            got = (f"shape {arr.shape} ({arr.dtype})" if arr is not None else type(value).__name__)
            want = "(*" + "".join(f", {n}" for n in shape) + ")"
            raise JobError(f"{self.job_path}: transform returned {got} for {name!r} in shard {shard}, "
                           f"expected rows of shape {want} ({dtype})")
        return np.ascontiguousarray(arr)

    def write(self, name: str, rows: np.ndarray, first_row: int) -> None:
        """``rows`` at row ``first_row`` of dataset ``name`` (int64 byte arithmetic: > 2**31 is fine)."""
        if len(rows) == 0:
            return
        if self.fd < 0:
            self.fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT, 0o666)
        row_bytes = rows[0].nbytes
        at = self.offsets[name] + int(first_row) * row_bytes
        view = memoryview(rows.reshape(-1).view(np.uint8))
        done = 0
        try:
            while done < len(view):
                done += os.pwrite(self.fd, view[done:], at + done)
        except OSError as exc:
            raise RowsNotWritten(f"cannot write output {self.output}: {exc.strerror or exc}") from None
        self.dirty = True

    def sync(self) -> None:
        """Make this rank's rows durable (before its shards are reported done)."""
        if self.dirty:
            try:
                os.fsync(self.fd)
            except OSError as exc:
                self.failed()
                raise RowsNotWritten(f"cannot write output {self.output}: {exc.strerror or exc}") from None
            self.dirty = False

    def deliver(self, write_result: Callable[[str], None]) -> None:
        """Rank 0: results and attributes (as :func:`hpcdist.output.write_result` makes them) and
        the HDF5 structure around the rows; fsync; rename to the final path."""
        if self.rows is None or not self.offsets:     # a kept, complete checkpoint: no rows here
            raise WriteFailed(f"cannot write output {self.output}: the checkpoint is complete and its rows "
                              f"went to the output of the run that completed it; rerun with --restart=fresh")
        small = f"{self.temp}-results"
        try:
            write_result(small)
            with h5py.File(small, "r") as src:
                def fill(f: h5py.File) -> None:
                    for name in src:
                        if name in f:
                            raise JobError(f"{self.job_path}: finalize returned {name!r}, the name of a "
                                           f"dataset the job writes (OUTPUTS)")
                        src.copy(src[name], f, name)
                    for key, value in src.attrs.items():
                        f.attrs[key] = value
                fd = os.open(self.temp, os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    offsets = complete(fd, self.datasets(), fill, {n: o.rows for n, o in self.outputs.items()})
                    os.fsync(fd)
                finally:
                    os.close(fd)
            if offsets != self.offsets:
                raise RuntimeError(f"output layout moved: {offsets} != {self.offsets}")
            os.replace(self.temp, self.output)
            atomic.fsync_path(os.path.dirname(os.path.abspath(self.output)))
        except OSError as exc:
            self.failed()
            raise WriteFailed(f"cannot write output {self.output}: {exc.strerror or exc}") from None
        except BaseException:
            self.failed()
            raise
        finally:
            if os.path.exists(small):
                os.unlink(small)

    def failed(self) -> None:
        """The job failed on this rank: without a checkpoint to resume from, its rows go."""
        self.close()
        if not self.keep and os.path.exists(self.temp):
            os.unlink(self.temp)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
