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
    env.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")                 # Open MPI 4: more ranks than cores
    env.setdefault("PRTE_MCA_rmaps_default_mapping_policy", ":oversubscribe")  # Open MPI 5 (PRRTE)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def hpcdist(*args: str, ranks: int | None = None, timeout: float = 120, cwd: Path | None = None,
            python: str | None = None) -> subprocess.CompletedProcess:
    """Run the ``hpcdist`` command, under ``mpiexec -n ranks`` when ranks is given.

    ``python``: another venv's interpreter (another MPI), launched with that venv's own mpiexec.
    """
    cmd = [python or sys.executable, "-m", "hpcdist", *args]
    if ranks is not None:
        launcher = str(Path(python).with_name("mpiexec")) if python else mpiexec()
        cmd = [launcher, "-n", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=launch_env(), cwd=cwd)


def run_ok(*args: str, ranks: int | None = None, timeout: float = 120, python: str | None = None
           ) -> subprocess.CompletedProcess:
    proc = hpcdist(*args, ranks=ranks, timeout=timeout, python=python)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


class MPIRun:
    """``mpiexec -n N python -m hpcdist ...`` in the background, with any MPI's venv, whose ranks
    can be found and signalled. With ``private_shm`` (root only) the run gets a /dev/shm of its own
    (a tmpfs in a private mount namespace) and ``left`` lists what it left there: exactly this
    run's files, whatever else runs on the machine.
    """

    def __init__(self, ranks: int | None, *args: str, python: str = sys.executable, private_shm: bool = False,
                 env: dict[str, str] | None = None, module: str | None = "hpcdist") -> None:
        import uuid
        self.marker = uuid.uuid4().hex
        self.ranks = ranks or 1
        self.left: list[str] | None = None
        self.shm_used_midway = 0   # bytes in use in the private /dev/shm mid-run, where a test measures it
        launcher = str(Path(python).with_name("mpiexec")) if python != sys.executable else mpiexec()
        cmd = [python, *(["-m", module] if module else []), *args]
        if ranks is not None:   # None: plain python, a singleton
            cmd = [launcher, "-n", str(ranks), *cmd]
        if private_shm:
            import tempfile
            self._listing = Path(tempfile.mkstemp(prefix="hpcdist-shm-")[1])
            script = ('mount -t tmpfs -o size=512m hpcdist-test /dev/shm || exit 97; "$@"; rc=$?; '
                      f'ls -A /dev/shm > {self._listing}; exit $rc')
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *cmd]
        e = {**launch_env(), "HPCDIST_TEST_MARKER": self.marker, **(env or {})}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)

    def pids(self, timeout: float = 30) -> dict[int, int]:
        """Rank -> pid of the ranks' own processes (MPICH sets PMI_RANK, Open MPI OMPI_COMM_WORLD_RANK)."""
        import time
        found: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        while len(found) < self.ranks and time.monotonic() < deadline:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
                    cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                except OSError:
                    continue
                if f"HPCDIST_TEST_MARKER={self.marker}".encode() not in env or cmdline[1:3] != [b"-m", b"hpcdist"]:
                    continue
                for item in env:
                    if item.startswith((b"PMI_RANK=", b"OMPI_COMM_WORLD_RANK=")):
                        found[int(item.split(b"=")[1])] = int(pid)
            time.sleep(0.05)
        assert len(found) == self.ranks, f"found ranks {found}"
        return found

    def finish(self, timeout: float = 90) -> subprocess.CompletedProcess:
        out, err = self.proc.communicate(timeout=timeout)
        if hasattr(self, "_listing"):
            assert self.proc.returncode != 97, f"could not mount a private /dev/shm: {err}"
            self.left = self._listing.read_text().split()
            self._listing.unlink()
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)


def wait_for_stop_handlers(pids: dict[int, int], timeout: float = 30) -> None:
    """Until every rank catches SIGUSR1 and SIGTERM (hpcdist's stop handlers are installed)."""
    import signal
    import time

    def caught(pid: int) -> bool:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("SigCgt:"):
                mask = int(line.split()[1], 16)
                return all(mask >> (s - 1) & 1 for s in (signal.SIGUSR1, signal.SIGTERM))
        return False

    deadline = time.monotonic() + timeout
    while not all(caught(pid) for pid in pids.values()):
        assert time.monotonic() < deadline, "the ranks never installed their stop handlers"
        time.sleep(0.01)


def read_h5(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}   # not the /hpcdist record


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


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """``tiny_tmpfs(size)``: a small tmpfs under tmp_path (a full disk on demand), unmounted afterwards.

    Mounting needs root: elsewhere the test is skipped with that reason (CI runs as root)."""
    mounted = []

    def mount(size: str = "1m") -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tiny tmpfs needs root (CI runs as root)")
        mnt = tmp_path / f"tiny-{len(mounted)}"
        mnt.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], check=True)
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False)

