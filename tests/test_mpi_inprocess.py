"""Runs tests/mpi (pytest-mpi, in-process MPI) under a real mpiexec at 1, 2 and 3 ranks."""

import re
import subprocess
import sys

import pytest

from conftest import ROOT, launch_env, mpiexec


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_in_process_mpi_suite_passes_on_every_rank(ranks):
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "pytest", "--with-mpi", "-q",
           "-p", "no:cacheprovider", str(ROOT / "tests" / "mpi")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=launch_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summaries = re.findall(r"(\d+) passed", proc.stdout)
    assert len(summaries) == ranks and all(int(n) >= 9 for n in summaries), proc.stdout[-2000:]
    assert "skipped" not in proc.stdout
