"""Warm starts: a cold numba cache is compiled by one process per cache directory, the other ranks load
its result; with a warm cache no rank waits for another (not even for a lock someone else holds)."""

import fcntl
import os
import shutil

import pytest

from conftest import ROOT, MPIRun

JOB = ROOT / "tests" / "jobs" / "two_kernels.py"
LOCK = ".hpcdist-compile.lock"


def _env(cache):
    return {"NUMBA_CACHE_DIR": str(cache), "NUMBA_DEBUG_CACHE": "1"}


def _copy_job(tmp_path):
    """A job file of this test's own, so its kernels are in no cache yet."""
    job = tmp_path / "two_kernels.py"
    shutil.copy(JOB, job)
    return job


def _run(ranks, *args, env):
    proc = MPIRun(ranks, *args, env=env).finish(timeout=90)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_cold_cache_is_compiled_by_one_rank_and_loaded_by_the_others(tmp_path, ranks):
    job, cache = _copy_job(tmp_path), tmp_path / "cache"
    out = _run(ranks, "run", str(job), env=_env(cache))
    for kernel in ("total", "spread"):         # pass 1's kernel and pass 2's
        saved = [line for line in out.split("[cache]") if "data saved" in line and f".{kernel}-" in line]
        loaded = [line for line in out.split("[cache]") if "data loaded" in line and f".{kernel}-" in line]
        assert len(saved) == 1 and len(loaded) == ranks - 1, out
    assert "m2" in out


@pytest.mark.parametrize("ranks", [1, 3])
def test_with_a_warm_cache_no_rank_waits_for_the_compile_lock(tmp_path, ranks):
    job, cache = _copy_job(tmp_path), tmp_path / "cache"
    _run(None, "compile", str(job), env=_env(cache))
    fd = os.open(cache / LOCK, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)              # someone is compiling: a rank that waited would hang here
    try:
        out = _run(ranks, "run", str(job), env=_env(cache))
    finally:
        os.close(fd)
    assert "data saved" not in out and out.count("data loaded") == 2 * ranks and "m2" in out
