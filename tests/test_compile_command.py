"""``hpcdist compile JOB.py``: fills numba's cache with every pass's kernels, says so in one line."""

import shutil

from conftest import ROOT, MPIRun, hpcdist

JOB = ROOT / "tests" / "jobs" / "two_kernels.py"


def _compile(job, cache, *more):
    return MPIRun(None, "compile", str(job), *more, env={"NUMBA_CACHE_DIR": str(cache)}).finish(timeout=60)


def test_compile_fills_the_cache_once_then_finds_it_there(tmp_path):
    job, cache = tmp_path / "two_kernels.py", tmp_path / "cache"
    shutil.copy(JOB, job)
    first = _compile(job, cache)
    assert first.returncode == 0, first.stderr
    assert first.stderr.startswith(f"two_kernels: kernels compiled into the numba cache {cache} (")
    assert len(list(cache.rglob("two_kernels.total-*.nbc"))) == 1      # pass 1's kernel
    assert len(list(cache.rglob("two_kernels.spread-*.nbc"))) == 1     # and pass 2's, though only pass 1 ran map first
    again = _compile(job, cache, "--input", "synthetic:rows=100,cols=2,seed=3")
    assert again.returncode == 0 and again.stderr.startswith(
        f"two_kernels: kernels already in the numba cache {cache} (")


def test_compile_refuses_a_bad_job_or_param_in_one_line(tmp_path):
    missing = hpcdist("compile", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "nope.py" in missing.stderr
    bad = hpcdist("compile", str(JOB), "-p", "bins=3")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "bins" in bad.stderr


def test_a_job_that_fails_on_its_first_rows_is_a_folded_traceback_and_exit_1(tmp_path):
    job = tmp_path / "broken.py"
    job.write_text("def map(shard, ctx):\n    return shard.sum() / undefined_name\n\n"
                   "def combine(a, b):\n    return a + b\n\ndef finalize(p, ctx):\n    return {'s': p}\n\n"
                   "def default_input(params):\n    return 'synthetic:rows=100,cols=1'\n")
    proc = hpcdist("compile", str(job))
    assert proc.returncode == 1
    assert "broken.py:2 in map: NameError: name 'undefined_name' is not defined" in proc.stderr
    assert "hpcdist/compile.py" not in proc.stderr and "warmup.py" not in proc.stderr
