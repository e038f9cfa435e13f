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
    """Rank 0's result layout; a rank whose finalize gave another is the job's bug."""
    everyone = comm.allgather(json.dumps(layout_of(results)))
    first = json.loads(everyone[0])
    for rank, other in enumerate(everyone):
        if other != everyone[0]:
            raise JobError(f"{job}: finalize gave results {json.loads(other)} on rank {rank} but {first} on rank 0")
    return [(n, d, tuple(s)) for n, d, s in first]


def write_keyed(comm: MPI.Intracomm, path: str, results: Mapping[str, np.ndarray], layout: Layout,
                attrs: Mapping[str, Any], identity: Mapping[str, Any],
                record: Mapping[str, np.ndarray] | None = None) -> None:
    """Every rank's rows of every result at its offset in the file at ``path`` (collective);
    rank 0 adds the attributes and the run ``record`` (:mod:`hpcdist.runlog`)."""
    rank = comm.Get_rank()
    counts = np.array(comm.allgather(len(results[layout[0][0]])), dtype=np.int64)
    first_row = int(counts[:rank].sum())
    outputs = {name: Output(rows="filter", dtype=dtype, row_shape=shape) for name, dtype, shape in layout}
    sink = RowSink(attrs.get("job_path", "job"), outputs, path, temp_name(path, dict(identity)))
    failed = None
    try:
        sink.fix(results)
        sink.place({name: int(counts.sum()) for name, _, _ in layout})
        for name, dtype, _ in layout:
            sink.write(name, np.ascontiguousarray(results[name], dtype=np.dtype(dtype)), first_row)
        sink.sync()
    except WriteFailed as exc:
        failed = str(exc)
    failed = next((f for f in comm.allgather(failed) if f is not None), None)
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
