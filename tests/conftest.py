"""Shared helpers: launching real ``mpiexec`` runs and making small datasets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
JOBS = ROOT / "jobs"

# tests/mpi/ holds in-process MPI tests: they run under mpiexec (see test_mpi_inprocess.py),
# not in the serial session, where they would only be skipped.
collect_ignore = [] if "--with-mpi" in sys.argv else ["mpi"]


def mpiexec() -> str:
    """The MPI launcher that belongs to this Python's mpi4py (never a stray system one)."""
    beside = Path(sys.executable).with_name("mpiexec")
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if not found:
        raise RuntimeError("no mpiexec found: install the 'mpich' extra (pip install -e '.[mpich,test]')")
    return found


def launch_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def hpcdist(*args: str, ranks: int | None = None, timeout: float = 120, cwd: Path | None = None
            ) -> subprocess.CompletedProcess:
    """Run the ``hpcdist`` command, under ``mpiexec -n ranks`` when ranks is given."""
    cmd = [sys.executable, "-m", "hpcdist", *args]
    if ranks is not None:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=launch_env(), cwd=cwd)


def run_ok(*args: str, ranks: int | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = hpcdist(*args, ranks=ranks, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def read_h5(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


def assert_same_bits(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        assert x.dtype == y.dtype and x.shape == y.shape, key
        assert x.tobytes() == y.tobytes(), f"{key} differs in its bits"


@pytest.fixture
def small_h5(tmp_path: Path) -> Path:
    """A chunked 2-D float64 dataset with NaNs, shards that do not divide evenly."""
    rng = np.random.default_rng(7)
    data = rng.normal(3.0, 2.0, size=(10_007, 3))
    data[rng.random(data.shape) < 0.01] = np.nan
    path = tmp_path / "small.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("/grp/x", data=data, chunks=(500, 3))
    return path
