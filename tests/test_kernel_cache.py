"""A warm start loads the stats kernels from numba's cache without starting numba's compiler
(issue 14: the warm load is most of ``compile_s``, and every rank pays it at the same moment)."""

import subprocess
import sys

import pytest

from conftest import JOBS, MPIRun, launch_env

COMPILER_ONLY = "numba.misc.gdb_hook"  # imported by numba's compiler start-up (context refresh), never by a load


def _warm(cache):
    proc = subprocess.run([sys.executable, "-m", "hpcdist", "compile", str(JOBS / "stats.py"), "-p", "lo=-4",
                           "-p", "hi=4"], capture_output=True, text=True, timeout=300,
                          env={**launch_env(), "NUMBA_CACHE_DIR": str(cache)})
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("ranks", [1, 2])
def test_a_warm_run_loads_the_kernels_without_starting_numbas_compiler(tmp_path, ranks):
    cache = tmp_path / "cache"
    _warm(cache)
    env = {"NUMBA_CACHE_DIR": str(cache), "NUMBA_DEBUG_CACHE": "1", "PYTHONPROFILEIMPORTTIME": "1"}
    proc = MPIRun(ranks, "run", str(JOBS / "stats.py"), "-p", "lo=-4", "-p", "hi=4",
                  env=env).finish(timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("data loaded") == ranks and "data saved" not in proc.stdout, proc.stdout
    assert COMPILER_ONLY not in proc.stderr, "a warm run started numba's compiler"
    assert "hist" in proc.stdout, proc.stdout


def test_after_a_lean_load_other_kernels_still_compile_and_the_results_match_numpy(tmp_path):
    cache = tmp_path / "cache"
    _warm(cache)
    script = """
import numpy as np
from numba import njit
from hpcdist import kernels
x = np.random.default_rng(1).normal(size=(1000, 4))
got = kernels.column_stats(x, -4.0, 4.0, 16)
for j in range(4):
    assert (got.hist[j] == np.histogram(x[:, j], 16, range=(-4.0, 4.0))[0]).all()
@njit
def sort_and_look_up(a):
    return np.sort(a)[0], {1: 2.0}[1]
assert sort_and_look_up(np.array([3.0, 1.0])) == (1.0, 2.0)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**launch_env(), "NUMBA_CACHE_DIR": str(cache)})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr



@pytest.mark.parametrize("ranks", [1, 2])
def test_a_warm_group_by_loads_its_kernels_without_starting_numbas_compiler(tmp_path, ranks):
    cache = tmp_path / "cache"
    warmed = subprocess.run([sys.executable, "-m", "hpcdist", "compile", str(JOBS / "groupby.py")],
                            capture_output=True, text=True, timeout=300,
                            env={**launch_env(), "NUMBA_CACHE_DIR": str(cache)})
    assert warmed.returncode == 0, warmed.stderr
    env = {"NUMBA_CACHE_DIR": str(cache), "PYTHONPROFILEIMPORTTIME": "1"}
    proc = MPIRun(ranks, "run", str(JOBS / "groupby.py"), "--output", str(tmp_path / "o.h5"),
                  env=env).finish(timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert COMPILER_ONLY not in proc.stderr, "a warm keyed run started numba's compiler"
    assert (tmp_path / "o.h5").exists()
