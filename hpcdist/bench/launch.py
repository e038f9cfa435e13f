"""Starting programs under MPI for the benchmarks: the one ``mpiexec`` lookup of the package.

Every benchmark that times a whole program (``hpcdist bench compare``, benchmarks/*.py) starts it
through :func:`launch`, so the launcher, its environment and the wall time mean the same thing in
every record.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np


def mpiexec() -> str:
    """The launcher that belongs to this Python's mpi4py (the ``mpich`` wheel puts it beside the
    interpreter), else the first one on PATH."""
    beside = Path(sys.executable).with_name("mpiexec")
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec") or "mpiexec"


def hpcdist_cmd() -> list[str]:
    """``hpcdist`` as a command: this interpreter's ``-m hpcdist`` (no console script needed)."""
    return [sys.executable, "-m", "hpcdist"]


def launch_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a launched program: ours, Open MPI allowed to run as root (CI runs so)."""
    env = dict(os.environ)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.update(extra or {})
    return env


def mpi_cmd(ranks: int, program: Sequence[str]) -> list[str]:
    """``mpiexec -n RANKS PROGRAM...``."""
    return [mpiexec(), "-n", str(ranks), *program]


def launch(cmd: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 3600
           ) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``cmd`` to its end; returns the finished process and its wall time. A failure raises
    RuntimeError with the command and the end of its stderr (a benchmark must not time a crash)."""
    t = time.perf_counter()
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env=dict(env or launch_env()),
                          timeout=timeout)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc, wall


@dataclass
class HpcdistRun:
    """What ``mpiexec -n N hpcdist run ... --output FILE`` left: the output's attributes and
    datasets, and the launcher's wall time (start-up of the interpreters included)."""

    wall_s: float
    attrs: dict[str, Any]
    results: dict[str, np.ndarray]

    def seconds(self, *names: str) -> dict[str, float]:
        return {name: float(self.attrs[name]) for name in names}


def run_hpcdist(ranks: int, job: str, args: Sequence[str], output: str,
                env: Mapping[str, str] | None = None, keep_output: bool = False) -> HpcdistRun:
    """``mpiexec -n RANKS hpcdist run JOB ARGS --output OUTPUT``, read back (and removed unless
    ``keep_output``)."""
    from hpcdist.output import read_result   # results only (not the /hpcdist run record), rank_* lists back

    _, wall = launch(mpi_cmd(ranks, [*hpcdist_cmd(), "run", str(job), *args, "--output", str(output)]), env)
    results, attrs = read_result(str(output))
    if not keep_output:
        os.unlink(output)
    return HpcdistRun(wall, attrs, results)
