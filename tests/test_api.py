"""The Python API, ``hpcdist.run``: the CLI's results, bit for bit, at 1 rank without mpiexec,
under mpiexec, and on a sub-communicator of a larger mpi4py program; errors are raised, not exits."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import JOBS, ROOT, assert_same_bits, launch_env, mpiexec, read_h5, run_ok

STATS = str(JOBS / "stats.py")
INPUT = "synthetic:rows=30000,cols=3,seed=4,nan=0.01"

SCRIPT = """
import sys
import h5py
from mpi4py import MPI
import hpcdist

def save(path, results):
    with h5py.File(path, "w") as f:
        for k, v in results.items():
            f[k] = v

out = sys.argv[1]
rank = MPI.COMM_WORLD.Get_rank()
"""


def python(script: str, tmp_path: Path, ranks: int | None = None) -> subprocess.CompletedProcess:
    path = tmp_path / "script.py"
    path.write_text(SCRIPT + textwrap.dedent(script))
    cmd = [sys.executable, str(path), str(tmp_path)]
    if ranks is not None:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=launch_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def cli_result(tmp_path) -> dict:
    run_ok("run", STATS, "--input", INPUT, "--shard-rows", "1000", "-p", "bins=16", "-o", str(tmp_path / "cli.h5"))
    return read_h5(tmp_path / "cli.h5")


@pytest.mark.parametrize("ranks", [None, 2])
def test_results_on_every_rank_equal_the_clis(ranks, cli_result, tmp_path):
    python(f"""
        res = hpcdist.run({STATS!r}, input={INPUT!r}, shard_rows=1000, params={{"bins": 16}})
        save(f"{{out}}/api{{rank}}.h5", res.results)
        assert res.attrs["ranks"] == MPI.COMM_WORLD.Get_size() and res.attrs["job"] == "stats"
    """, tmp_path, ranks)
    for r in range(ranks or 1):
        assert_same_bits(cli_result, read_h5(tmp_path / f"api{r}.h5"))


def test_on_a_sub_communicator_errors_stay_inside_it(cli_result, tmp_path):
    proc = python(f"""
        sub = MPI.COMM_WORLD.Split(0 if rank < 2 else 1, rank)
        if rank < 2:
            res = hpcdist.run({STATS!r}, input={INPUT!r}, shard_rows=1000, params={{"bins": "16"}}, comm=sub)
            save(f"{{out}}/sub{{rank}}.h5", res.results)
            try:
                hpcdist.run({STATS!r}, input={INPUT!r}, params={{"bins": 0}}, comm=sub)
            except hpcdist.UserError as exc:
                print(f"rank {{rank}} caught: {{exc}}")
        else:
            print(f"rank {{rank}} went on: {{sub.allreduce(1)}}")
        MPI.COMM_WORLD.Barrier()
    """, tmp_path, ranks=3)
    for r in (0, 1):
        assert_same_bits(cli_result, read_h5(tmp_path / f"sub{r}.h5"))
    assert proc.stdout.count("caught: param bins must be >= 1") == 2 and "rank 2 went on: 1" in proc.stdout


def test_a_job_can_be_any_object_with_the_three_functions(tmp_path):
    proc = python("""
        import numpy as np

        class Total:
            PARAMS = {"scale": hpcdist.Param(float, 1.0, "multiply the total")}
            def default_input(params):
                return "range:1000"
            def map(shard, ctx):
                return {"sum": np.arange(ctx.start, ctx.stop, dtype=np.float64).sum(keepdims=True)}   # range: row numbers only
            def combine(a, b):
                return {"sum": a["sum"] + b["sum"]}
            def finalize(p, ctx):
                return {"total": p["sum"] * ctx.params["scale"]}

        res = hpcdist.run(Total, params={"scale": 2.0})
        print("total", float(res["total"].ravel()[0]))
        try:
            hpcdist.run(Total, params={"nope": 1})
        except hpcdist.UserError as exc:
            print("error:", exc)
    """, tmp_path)
    assert "total 999000.0" in proc.stdout
    assert "error: job Total: unknown param 'nope'" in proc.stdout
