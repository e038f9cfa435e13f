"""Per-key results written by the ranks that own them, into one HDF5 file, atomically.

Rank 0 creates the file at a temporary name with every dataset contiguous and allocated up front
(no fill), so each dataset is one plain byte range of the file; it tells every rank the offsets,
and each owner ``pwrite``s its rows (its keys are one sorted slice of the result: range
partition). Rank 0 then adds the run's attributes, fsyncs and renames it to the final path. A rank
never holds more than its own keys; a failure anywhere leaves nothing at the final path.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import h5py
import numpy as np
from mpi4py import MPI

from hpcdist import atomic
from hpcdist.errors import JobError, WriteFailed

Layout = list[tuple[str, str, tuple[int, ...]]]     # name, dtype, shape per key


def layout_of(results: Mapping[str, np.ndarray]) -> Layout:
    return [(name, arr.dtype.str, tuple(arr.shape[1:])) for name, arr in results.items()]


def agree_layout(comm: MPI.Intracomm, results: Mapping[str, np.ndarray], job: str) -> Layout:
    """Rank 0's result layout; a rank whose finalize gave another is the job's bug."""
    mine = layout_of(results)
    everyone = comm.allgather(json.dumps(mine))
    first = json.loads(everyone[0])
    for rank, other in enumerate(everyone):
        if other != everyone[0]:
            raise JobError(f"{job}: finalize gave results {json.loads(other)} on rank {rank} but {first} on rank 0")
    return [(n, d, tuple(s)) for n, d, s in first]


def write_keyed(comm: MPI.Intracomm, path: str, results: Mapping[str, np.ndarray], layout: Layout,
                attrs: Mapping[str, Any]) -> None:
    """Every rank's rows of every result at its offset in the file at ``path`` (collective)."""
    rank = comm.Get_rank()
    counts = np.array(comm.allgather(len(results[layout[0][0]])), dtype=np.int64)
    first_row, total = int(counts[:rank].sum()), int(counts.sum())
    failed, where = None, None
    if rank == 0:
        try:
            where = (atomic.temp_path(path), _create(atomic.temp_path(path), layout, total))
        except OSError as exc:
            failed = f"cannot write output {path}: {exc.strerror or exc}"
    failed, where = comm.bcast((failed, where), root=0)
    if failed is None:
        failed = _agree(comm, _pwrite(where[0], where[1], results, layout, first_row), path)
    if failed is None and rank == 0:
        failed = _finish(where[0], path, attrs)
    failed = comm.bcast(failed, root=0)
    if failed is not None:
        if rank == 0 and where is not None and os.path.exists(where[0]):
            os.unlink(where[0])
        raise WriteFailed(failed, agreed=True)


def _create(tmp: str, layout: Layout, total: int) -> dict[str, int | None]:
    offsets: dict[str, int | None] = {}
    with h5py.File(tmp, "w", track_order=True) as f:
        for name, dtype, shape in layout:
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            space = h5py.h5s.create_simple((total, *shape))
            tid = h5py.h5t.py_create(np.dtype(dtype), logical=True)
            ds = h5py.h5d.create(f.id, name.encode(), tid, space, dcpl=dcpl)
            offsets[name] = ds.get_offset()
    return offsets


def _pwrite(tmp: str, offsets: Mapping[str, int | None], results: Mapping[str, np.ndarray], layout: Layout,
            first_row: int) -> str | None:
    try:
        fd = os.open(tmp, os.O_WRONLY)
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        for name, dtype, _ in layout:
            arr = np.ascontiguousarray(results[name], dtype=np.dtype(dtype))
            if arr.size == 0 or offsets[name] is None:
                continue
            row_bytes = arr.nbytes // len(arr)
            view = memoryview(arr.reshape(-1).view(np.uint8))
            at = int(offsets[name]) + first_row * row_bytes
            while view:
                done = os.pwrite(fd, view, at)
                view, at = view[done:], at + done
        os.fsync(fd)
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        os.close(fd)
    return None


def _agree(comm: MPI.Intracomm, mine: str | None, path: str) -> str | None:
    for rank, reason in enumerate(comm.allgather(mine)):
        if reason is not None:
            return f"cannot write output {path}: rank {rank}: {reason}"
    return None


def _finish(tmp: str, path: str, attrs: Mapping[str, Any]) -> str | None:
    try:
        with h5py.File(tmp, "r+") as f:
            for key, value in attrs.items():
                f.attrs[key] = _attr(value)
        atomic.fsync_path(tmp)
        os.replace(tmp, path)
        atomic.fsync_path(os.path.dirname(os.path.abspath(path)))
    except OSError as exc:
        return f"cannot write output {path}: {exc.strerror or exc}"
    return None


def _attr(value: Any) -> Any:
    """As :mod:`hpcdist.output` stores them: number lists as arrays, other containers as JSON."""
    if isinstance(value, (dict, list, tuple)):
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
            return np.asarray(value)
        return json.dumps(value, sort_keys=True)
    return value
