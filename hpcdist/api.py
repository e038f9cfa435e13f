"""The Python API: ``hpcdist.run(job, ...)`` from a script, a notebook or a larger mpi4py program.

Every rank of ``comm`` calls it (SPMD), like ``hpcdist run`` under ``mpiexec``; at one rank it
needs no launcher. It returns a :class:`Result` with the same results on every rank, and raises
instead of exiting:

- :class:`hpcdist.UserError` for bad input (job file, params, paths, data): decided on rank 0 and
  raised on every rank of ``comm``; ranks outside ``comm`` are untouched.
- :class:`hpcdist.WriteFailed` when the output could not be written: raised on every rank.
- :class:`hpcdist.Interrupted` when a signal stopped a run with ``checkpoint=`` (every rank).

A failure that only some ranks of ``comm`` see (a bug in the job's ``map`` on one rank, a job
error found while combining, an unexpected exception) cannot be raised cleanly: the other ranks
are inside a collective with the failing one and MPI cannot cancel it. Then the failing rank
prints the error and calls ``MPI_Abort(comm)``, which MPICH and Open MPI carry out by ending the
whole MPI job, including ranks outside ``comm``. On a communicator of one rank nothing can hang,
so every exception is raised as it is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Mapping

import numpy as np

from hpcdist.errors import JobError, UserError, WriteFailed
from hpcdist.job import Job, job_from_object, load_job
from hpcdist.options import CHECKPOINT_EVERY_S, RunOptions
from hpcdist.signals import StopFlag

__all__ = ["Result", "run", "run_with_options"]


@dataclass
class Result:
    """What a run produced, the same on every rank: ``results`` (name -> numpy array, in the job's
    order) and ``attrs`` (the run facts written as the output's attributes)."""

    results: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.results[name]


def run(job: str | os.PathLike[str] | ModuleType | object, *, input: str | None = None,
        output: str | None = None, params: Mapping[str, Any] | None = None, comm: Any = None,
        checkpoint: str | None = None, schedule: str = "auto", shard_rows: int | None = None,
        checkpoint_every: float = CHECKPOINT_EVERY_S, checkpoint_every_shards: int | None = None,
        restart: str = "auto", keep_checkpoint: bool = False, progress: float | bool | None = False) -> Result:
    """Run ``job`` over ``input`` on every rank of ``comm`` (default: ``MPI.COMM_WORLD``).

    Args:
        job: a job file's path, an imported module, or any object with ``map``, ``combine`` and
            ``finalize`` (and optionally ``PARAMS``, ``default_input``, ``init``/``update``, ...).
        input: a source spec as on the command line (``FILE.h5:/dataset``, ``FILE.npy``,
            ``synthetic:rows=N,...``); default: the job's own ``default_input``.
        output: also write the result file here (atomically).
        params: the job's params, typed (``{"bins": 16}``) or as command-line strings (``{"bins": "16"}``).
        comm: an mpi4py intracommunicator; only its ranks take part.
        checkpoint, checkpoint_every, checkpoint_every_shards, restart, keep_checkpoint, schedule,
        shard_rows: as ``hpcdist run``'s options of the same names.
        progress: False (the default here: quiet), None (as the command line: on a terminal), or
            seconds between progress lines on rank 0's stderr.

    Returns:
        A :class:`Result`, the same on every rank.

    Raises:
        UserError, WriteFailed, Interrupted: see the module's docstring.
    """
    options = RunOptions(input=input, output=output, params=_as_text(params or {}), shard_rows=shard_rows,
                         checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                         checkpoint_every_shards=checkpoint_every_shards, restart=restart,
                         keep_checkpoint=keep_checkpoint, schedule=schedule, progress=progress)
    return run_with_options(job, options, comm)


def run_with_options(job: str | os.PathLike[str] | ModuleType | object, options: RunOptions, comm: Any = None,
                     stop: StopFlag | None = None) -> Result:
    """:func:`run` with the options already gathered (``hpcdist run`` calls this)."""
    from hpcdist.comm import World, world
    w = world() if comm is None else World(comm)
    try:
        return _run(job, options, w, stop)
    except (UserError, WriteFailed) as exc:
        if exc.agreed or w.size == 1:
            raise
        _end_all(w, exc)
    except JobError as exc:
        if w.size == 1:
            raise
        _end_all(w, exc)
    except Exception as exc:   # noqa: BLE001 - one rank alone cannot go on without the others
        from hpcdist.control import Interrupted
        if isinstance(exc, Interrupted) or w.size == 1:
            raise
        _end_all(w, exc)
    raise AssertionError("unreachable")


def _run(job: Any, options: RunOptions, w: Any, stop: StopFlag | None) -> Result:
    from hpcdist import numba_env
    from hpcdist.partials import decode_with_meta, encode
    from hpcdist.runtime import run as run_job

    numba_env.configure(w.node_size)
    loaded, problem = _load(job)
    w.agree(lambda: _raise_if(problem))       # rank 0's verdict is everyone's
    if problem or loaded is None:
        raise UserError(problem or "no job")    # this rank alone: ends the run (see the module docstring)
    report = run_job(loaded, options, w, stop)
    if w.size == 1:
        return Result(dict(report.results or {}), dict(report.attrs))
    buf = encode([(0, 0, report.results or {})], {"attrs": json.dumps(report.attrs, default=_plain)}) \
        if w.rank == 0 else None
    n = np.array([0 if buf is None else len(buf)], dtype=np.int64)
    w.comm.Bcast(n, root=0)
    if buf is None:
        buf = np.empty(int(n[0]), dtype=np.uint8)
    w.comm.Bcast([buf, buf.size], root=0)
    nodes, meta = decode_with_meta(buf)
    return Result(dict(nodes[0][2]) if nodes else {}, json.loads(meta["attrs"]))


def _load(job: Any) -> tuple[Job | None, str | None]:
    try:
        if isinstance(job, (str, os.PathLike)):
            return load_job(os.fspath(job)), None
        return job_from_object(job), None
    except UserError as exc:
        return None, str(exc)


def _raise_if(problem: str | None) -> None:
    if problem:
        raise UserError(problem)


def _as_text(params: Mapping[str, Any]) -> dict[str, str]:
    """Typed values as the command line would spell them (the job's Param parses them back)."""
    out = {}
    for name, value in params.items():
        if isinstance(value, bool):
            out[str(name)] = "true" if value else "false"
        elif isinstance(value, float):
            out[str(name)] = repr(value)
        else:
            out[str(name)] = str(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _end_all(w: Any, exc: BaseException) -> None:
    """Print ``exc`` as ``hpcdist run`` would and abort ``w``'s communicator (never returns)."""
    from hpcdist.comm import run_spmd

    def fail() -> int:
        raise exc
    run_spmd(fail, w.comm)
