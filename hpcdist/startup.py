"""The checks every rank makes before MPI starts a run: mpi4py importable, srun's MPI plugin right.

Used by ``hpcdist run`` and ``hpcdist bench``. Outside Slurm (no ``SLURM_JOB_ID``) the plugin check
passes and no restart is logged. The ``SLURM_*`` facts a run records are :mod:`hpcdist.allocation`'s.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping

from hpcdist.allocation import in_allocation
from hpcdist.errors import EXIT_USAGE

PLUGIN_HINT = ("srun's MPI plugin does not match this MPI library: use srun --mpi=pmi2 for the PyPI mpich "
               "wheel (and MPICH, Intel MPI), --mpi=pmix for Open MPI; `srun --mpi=list` shows what this "
               "cluster has")


def plugin_error(world_size: int, environ: Mapping[str, str] | None = None) -> str | None:
    """The wrong-MPI-plugin case: srun started N > 1 tasks of this step, yet MPI sees a world of 1.

    With a plugin the MPI library does not speak, every task initialises as a singleton and would
    silently compute the whole job alone (N times over). ``mpiexec`` inside an allocation is fine:
    its step holds one proxy per node, and the world it builds is larger than 1.
    """
    env = os.environ if environ is None else environ
    if not env.get("SLURM_STEP_ID") or world_size != 1:
        return None
    try:
        tasks = int(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or "1")
    except ValueError:
        return None
    if tasks <= 1:
        return None
    plugin = env.get("SLURM_MPI_TYPE") or "none"
    return (f"srun started {tasks} tasks (--mpi={plugin}) but MPI sees a world of 1 rank in each: "
            f"{PLUGIN_HINT}")


def restart_line(environ: Mapping[str, str] | None = None) -> str | None:
    """One line for the log when this run is a restart of a requeued job, else None."""
    env = os.environ if environ is None else environ
    count = env.get("SLURM_RESTART_COUNT", "")
    if not in_allocation(env) or not count.isdigit() or int(count) == 0:
        return None
    job = env.get("SLURM_JOB_ID")
    return (f"hpcdist: slurm job {job} restart {int(count)} (SLURM_RESTART_COUNT={count}): "
            f"resuming from the checkpoint if there is one")


def require_mpi4py() -> None:
    """Fail with one line (exit 2) when mpi4py cannot be imported, before anything imports it.

    Imports only the package, not ``mpi4py.MPI``: MPI is not initialised here.
    """
    try:
        import mpi4py  # noqa: F401
    except ImportError as exc:
        _fail(os.environ.get("SLURM_PROCID", "0") in ("", "0"), _no_mpi4py(exc))


def _no_mpi4py(exc: BaseException) -> str:
    where = f" on {os.uname().nodename}" if in_allocation() else ""
    return (f"cannot import mpi4py{where} ({exc}): install hpcdist with MPI on every node (pip install "
            f"-e '.[mpich]', or mpi4py built against the site MPI) and run that venv's hpcdist "
            f"(this is {sys.executable})")


def check_allocation() -> None:
    """Before a run: fail clearly if mpi4py is missing or srun's MPI plugin is wrong (exit 2), and
    log one line if this is a restart. Called on every task by ``hpcdist run``.
    """
    first = os.environ.get("SLURM_PROCID", "0") in ("", "0")
    try:
        from hpcdist.comm import world
    except ImportError as exc:
        _fail(first, _no_mpi4py(exc))
    w = world()
    problem = plugin_error(w.size)
    if problem:
        _fail(first, problem)
    line = restart_line()
    if line and w.rank == 0:
        print(line, file=sys.stderr, flush=True)


def _fail(print_it: bool, message: str) -> None:
    if print_it:  # every task would print the same line: task 0 speaks for all
        print(f"hpcdist: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_USAGE)
