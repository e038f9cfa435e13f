"""Per-key results written by the ranks that own them, through the row writer of issue 11.

Every owner's keys are one sorted slice of the result (range partition), starting at the sum of
the lower ranks' key counts. Each rank ``pwrite``s its rows of every dataset at that offset with
:class:`hpcdist.sinks.rows.RowSink` (the layout is a pure function of names, dtypes and lengths, so
no offsets travel), fsyncs, and rank 0 adds the HDF5 structure and the run's attributes around
them and renames. No rank holds more than its own keys; a failure anywhere leaves nothing at the
final path.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np
from mpi4py import MPI

from hpcdist.errors import JobError, WriteFailed
from hpcdist.output import write_result
from hpcdist.sinks.declare import Output
from hpcdist.sinks.rows import RowSink, temp_name

Layout = list[tuple[str, str, tuple[int, ...]]]     # name, dtype, shape per key


def layout_of(results: Mapping[str, np.ndarray]) -> Layout:
    return [(name, arr.dtype.str, tuple(arr.shape[1:])) for name, arr in results.items()]


def agree_layout(comm: MPI.Intracomm, results: Mapping[str, np.ndarray], job: str) -> Layout:
    """Rank 0's result layout; a rank whose finalize gave another is the job's bug (the lowest
    such rank is named). Broadcasts and one reduction: O(log P) messages per rank."""
    mine = json.dumps(layout_of(results))
    first = comm.bcast(mine if comm.Get_rank() == 0 else None, root=0)
    other = _lowest(comm, mine if mine != first else None)
    if other is not None:
        rank, text = other
        raise JobError(f"{job}: finalize gave results {json.loads(text)} on rank {rank} but "
                       f"{json.loads(first)} on rank 0")
    return [(n, d, tuple(s)) for n, d, s in json.loads(first)]


def _lowest(comm: MPI.Intracomm, item: Any) -> tuple[int, Any] | None:
    """(rank, item) of the lowest rank whose ``item`` is not None, on every rank; else None."""
    size = comm.Get_size()
    rank = comm.allreduce(comm.Get_rank() if item is not None else size, op=MPI.MIN)
    return None if rank == size else (rank, comm.bcast(item, root=rank))


def write_keyed(comm: MPI.Intracomm, path: str, results: Mapping[str, np.ndarray], layout: Layout,
                attrs: Mapping[str, Any], identity: Mapping[str, Any],
                record: Mapping[str, np.ndarray] | None = None) -> None:
    """Every rank's rows of every result at its offset in the file at ``path`` (collective);
    rank 0 adds the attributes and the run ``record`` (:mod:`hpcdist.runlog`)."""
    rank = comm.Get_rank()
    mine = len(results[layout[0][0]])
    first_row = int(comm.exscan(mine) or 0) if comm.Get_size() > 1 else 0    # rank 0 gets None
    total = int(comm.allreduce(mine))
    outputs = {name: Output(rows="filter", dtype=dtype, row_shape=shape) for name, dtype, shape in layout}
    sink = RowSink(attrs.get("job_path", "job"), outputs, path, temp_name(path, dict(identity)))
    failed = None
    try:
        sink.fix(results)
        sink.place({name: total for name, _, _ in layout})
        for name, dtype, _ in layout:
            sink.write(name, np.ascontiguousarray(results[name], dtype=np.dtype(dtype)), first_row)
        sink.sync()
    except WriteFailed as exc:
        failed = str(exc)
    first = _lowest(comm, failed)
    failed = first[1] if first is not None else None
    if failed is None and rank == 0:
        try:
            sink.deliver(lambda small: write_result(small, {}, attrs, record))
        except WriteFailed as exc:
            failed = str(exc)
    failed = comm.bcast(failed, root=0)
    sink.close()
    if failed is not None:
        if rank == 0:
            sink.failed()
        raise WriteFailed(failed, agreed=True)
