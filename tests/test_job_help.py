"""A job explains itself (``run JOB.py --help``, ``hpcdist jobs DIR``), a run says what data it
ran on, and ``hpcdist info --full`` prints every value."""

from __future__ import annotations

import textwrap

import numpy as np

from conftest import JOBS, hpcdist, run_ok

JOB = '''
"""Sum of squares of every column.

Squares each value and adds them up per column, NaNs left out. Results: total, rows.
"""
import numpy as np
from hpcdist import Param

PARAMS = {"power": Param(int, 2, "the exponent applied to every value"),
          "scale": Param(float, 1.0, "multiply the total by this")}


def default_input(params):
    return "synthetic:rows=5000,cols=2,seed=3,nan=0.01"


def map(shard, ctx):
    return {"total": np.nansum(shard ** ctx.params["power"], axis=0), "rows": np.asarray(len(shard))}


def combine(a, b):
    return {"total": a["total"] + b["total"], "rows": a["rows"] + b["rows"]}


def finalize(p, ctx):
    return {"total": p["total"] * ctx.params["scale"], "rows": p["rows"]}
'''


def test_run_job_help_lists_params_default_input_and_results(tmp_path):
    job = tmp_path / "squares.py"
    job.write_text(JOB)
    proc = run_ok("run", str(job), "--help")
    out = proc.stdout
    assert out.startswith("squares: Sum of squares of every column.")
    assert "power  int    default 2" in out and "the exponent applied to every value" in out
    assert "scale  float  default 1.0" in out and "multiply the total by this" in out
    assert "default input: synthetic:rows=5000,cols=2,seed=3,nan=0.01" in out
    assert "(synthetic: 5,000 rows x 2 float64, seed 3, 1% NaN)" in out
    assert "results: total, rows" in out
    assert "hpcdist run --help" in out               # where the options of every run are


def test_jobs_lists_the_job_files_of_a_directory(tmp_path):
    (tmp_path / "squares.py").write_text(JOB)
    (tmp_path / "helper.py").write_text('"""Not a job."""\ndef util():\n    pass\n')
    out = run_ok("jobs", str(tmp_path)).stdout
    assert "squares.py  Sum of squares of every column." in out and "helper" not in out
    shipped = run_ok("jobs", str(JOBS)).stdout
    assert "stats.py" in shipped and "kmeans.py" in shipped
    assert hpcdist("jobs", str(tmp_path / "missing")).returncode == 2


def test_a_run_on_generated_data_says_what_it_ran_on(tmp_path):
    job = tmp_path / "squares.py"
    job.write_text(JOB)
    proc = run_ok("run", str(job))
    assert "input: synthetic: 5,000 rows x 2 float64, seed 3, 1% NaN" in proc.stderr


def test_info_full_prints_every_value(tmp_path):
    out = tmp_path / "out.h5"
    run_ok("run", str(JOBS / "stats.py"), "--input", "synthetic:rows=3000,cols=1", "-p", "bins=200", "-o", str(out))
    short, full = run_ok("info", str(out)).stdout, run_ok("info", str(out), "--full").stdout
    assert "..." in short and "..." not in full
    hist_line = full[full.index("  hist  "):full.index("  hist_edges")]
    counts = [int(x) for x in hist_line.split("]", 1)[1].replace("[", " ").replace("]", " ").split()]
    assert len(counts) == 200 and sum(counts) == 3000
