"""Nothing left behind: however a run ends, MPI's shared memory is not left in /dev/shm.

MPICH keeps a 2-3 MB segment per node in /dev/shm that only MPI_Finalize removes; a run that
aborted or stopped with exit 75 used to leave it there, holding RAM until reboot. Each run here
gets a /dev/shm of its own (a tmpfs in a private mount namespace, so other programs on the machine
cannot disturb the count) and must leave it empty: success, an exception on one rank (abort), a
signal (checkpoint, exit 75), with the dynamic schedule's MPI-3 window and with the static split,
and a one-rank run without a launcher.
tests/test_openmpi.py runs the same endings under Open MPI.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from conftest import JOBS, ROOT, MPIRun, wait_for_stop_handlers

FAIL = str(ROOT / "tests" / "jobs" / "fail_on_last_shard.py")
SLOW = str(ROOT / "tests" / "jobs" / "slow_sum.py")

pytestmark = pytest.mark.timeout(120)


def private_shm_or_skip() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: each run gets a private /dev/shm (unshare --mount + a tmpfs); CI runs as root")
    if not shutil.which("unshare"):
        pytest.skip("needs unshare(1) from util-linux for a private /dev/shm")


def shm_used_bytes(pid: int) -> int:
    """Bytes in use in the /dev/shm that process ``pid`` sees (its own mount namespace)."""
    st = os.statvfs(f"/proc/{pid}/root/dev/shm")
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def success(python: str, tmp: Path) -> MPIRun:
    run = MPIRun(2, "run", str(JOBS / "stats.py"), "--input", "synthetic:rows=200000,cols=2,seed=1",
                 "--output", str(tmp / "out.h5"), python=python, private_shm=True)
    proc = run.finish()
    assert proc.returncode == 0, proc.stderr
    assert (tmp / "out.h5").exists()
    return run


def abort(python: str, tmp: Path, schedule: str = "dynamic") -> MPIRun:
    run = MPIRun(2, "run", FAIL, "--schedule", schedule, python=python, private_shm=True)
    proc = run.finish()
    assert proc.returncode == 1, proc.stderr
    assert "ValueError: kernel failed on shard" in proc.stderr
    return run


def exit_75(python: str, tmp: Path) -> MPIRun:
    """SIGUSR1 to rank 1 mid-run: every rank stops, rank 0 checkpoints, all leave with 75."""
    ckpt = tmp / "run.ckpt.h5"
    run = MPIRun(2, "run", SLOW, "--shard-rows", "500", "--param", "shards=120", "--param", "sleep=0.05", "--checkpoint", str(ckpt),
                 "--schedule", "dynamic", python=python, private_shm=True)
    pids = run.pids()
    wait_for_stop_handlers(pids)
    time.sleep(0.5)   # into the map phase: the window exists
    run.shm_used_midway = shm_used_bytes(pids[1])
    os.kill(pids[1], signal.SIGUSR1)
    proc = run.finish()
    assert proc.returncode == 75, proc.stderr
    assert ckpt.exists(), proc.stderr
    return run


def singleton(python: str, tmp: Path) -> MPIRun:
    """Plain python, no launcher: a world of one rank."""
    run = MPIRun(None, "run", str(JOBS / "stats.py"), "--input", "synthetic:rows=200000,cols=2,seed=1",
                 "--output", str(tmp / "out.h5"), python=python, private_shm=True)
    proc = run.finish()
    assert proc.returncode == 0, proc.stderr
    return run


ENDINGS = {"success": success, "one rank, no launcher": singleton, "abort": abort, "exit 75": exit_75,
           "abort, static": lambda python, tmp: abort(python, tmp, "static")}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_a_2_rank_run_leaves_nothing_in_dev_shm(ending, tmp_path):
    private_shm_or_skip()
    run = ENDINGS[ending](sys.executable, tmp_path)
    assert run.left == [], f"left in /dev/shm after {ending}: {run.left}"
    if ending == "exit 75":   # MPICH did use /dev/shm during the run (its files were unlinked, not never made)
        assert run.shm_used_midway > 0, "MPI put nothing in /dev/shm: this test would prove nothing"


def test_without_hpcdist_mpich_does_leave_its_segment(tmp_path):
    """The control: a bare mpi4py program that aborts leaves MPICH's segment, so the test above
    would see it if hpcdist left it."""
    private_shm_or_skip()
    from hpcdist.comm import mpi_library
    if not mpi_library().startswith("MPICH"):
        pytest.skip(f"the control is about MPICH; this MPI is {mpi_library()}")
    bare = "from mpi4py import MPI; MPI.COMM_WORLD.Barrier(); MPI.COMM_WORLD.Abort(3)"
    run = MPIRun(2, "-c", bare, module=None, private_shm=True)
    proc = run.finish()
    assert proc.returncode == 3, proc.stderr
    assert any(name.startswith("mpich_shm_") for name in run.left), run.left


def test_only_files_this_process_maps_and_that_still_have_a_name_are_candidates():
    from hpcdist.mpi_shm import mapped_files
    maps = "\n".join([
        "7f0f30030000-7f0f30236000 rw-s 00000000 00:1b 216   /dev/shm/mpich_shm_bf197685_0",
        "7f0f2b7ce000-7f0f2bbe7000 rw-s 00000000 00:1b 218   /dev/shm/ucx_shm_posix_27cf6832 (deleted)",
        "7f0f2bbe7000-7f0f2c000000 rw-s 00000000 00:01 98331 /SYSV00000000 (deleted)",
        "7f0f30030000-7f0f30236000 rw-s 00000000 00:1b 216   /dev/shm/mpich_shm_bf197685_0",
        "7f0f374b1000-7f0f374ba000 r--p 00000000 08:01 1234  /usr/lib/libmpi.so.12",
        "7f0f374b1000-7f0f374ba000 rw-p 00000000 00:00 0",
    ])
    assert mapped_files(maps) == ["/dev/shm/mpich_shm_bf197685_0"]
