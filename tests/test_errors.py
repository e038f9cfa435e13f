"""Bad input: one clear line on stderr, exit code 2, no output left behind, and never a hang."""

import time

import h5py
import numpy as np
import pytest

from conftest import JOBS, hpcdist

STATS = str(JOBS / "stats.py")


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "text.h5").write_text("not hdf5 at all\n")
    with h5py.File(d / "f.h5", "w") as f:
        f.create_dataset("/grp/strings", data=np.array([b"a", b"b"]))
        f.create_dataset("/grp/empty", shape=(0, 3), dtype="f8")
        f.create_dataset("/grp/cube", data=np.zeros((4, 3, 2)))
        f.create_dataset("/grp/ok", data=np.arange(10.0))
    (d / "notajob.py").write_text("x = 1\n")
    (d / "broken.py").write_text("def map(:\n")
    return d


CASES = {
    "missing file": (["--input", "{d}/nope.h5:/x"], "nope.h5: no such file"),
    "not an HDF5 file": (["--input", "{d}/text.h5:/x"], "text.h5: not an HDF5 file"),
    "missing dataset": (["--input", "{d}/f.h5:/grp/nope"], "no dataset '/grp/nope'; datasets here: /grp/"),
    "a group, not a dataset": (["--input", "{d}/f.h5:/grp"], "is a group, not a dataset"),
    "non-numeric dtype": (["--input", "{d}/f.h5:/grp/strings"], "is not numeric"),
    "empty dataset": (["--input", "{d}/f.h5:/grp/empty"], "is empty (shape (0, 3))"),
    "wrong number of dimensions": (["--input", "{d}/f.h5:/grp/cube"], "needs 1-D or 2-D data, got 3-D"),
    "unknown param": (["--param", "binz=3"], "unknown param 'binz'; valid params: bins, hi, lo"),
    "ill-typed param": (["--param", "bins=lots"], "param bins: expected int, got 'lots'"),
    "param out of range": (["--param", "bins=0"], "param bins must be >= 1"),
    "lo without hi": (["--param", "lo=1"], "lo and hi go together"),
    "output directory missing": (["--output", "{d}/no/such/dir/out.h5"], "does not exist"),
    "output directory not writable": (["--output", "/sys/out.h5"], "/sys is not writable"),
    "malformed input spec": (["--input", "{d}/f.h5"], "expected FILE.h5:/path/to/dataset"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_exit_2(case, bad):
    extra, message = CASES[case]
    proc = hpcdist("run", STATS, *[a.format(d=bad) for a in extra], timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hpcdist: error: ") and message in lines[0], lines[0]


@pytest.mark.parametrize("job,message", [
    ("{d}/nojob.py", "unknown job"),
    ("stats", "unknown job 'stats': no such file (give the path of a job file"),
    ("{d}/notajob.py", "not a job: missing function(s) map, combine, finalize"),
    ("{d}/broken.py", "cannot load job: SyntaxError"),
])
def test_bad_job_is_one_line_and_exit_2(job, message, bad):
    proc = hpcdist("run", job.format(d=bad), timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("case", ["missing dataset", "unknown param", "output directory not writable"])
def test_bad_input_under_mpiexec_is_reported_once(case, bad):
    extra, message = CASES[case]
    proc = hpcdist("run", STATS, *[a.format(d=bad) for a in extra], ranks=3, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count(message) == 1, proc.stderr


def test_a_failing_rank_ends_every_rank_with_its_traceback(tmp_path):
    out = tmp_path / "out.h5"
    started = time.monotonic()
    proc = hpcdist("run", str(JOBS.parent / "tests" / "jobs" / "fail_on_last_shard.py"),
                   "--output", str(out), "--shard-rows", "4096", ranks=3, timeout=60)
    assert time.monotonic() - started < 30
    assert proc.returncode != 0
    assert "rank 2: ValueError: kernel failed on shard 9" in proc.stderr
    assert proc.stderr.count("Traceback") == 1          # printed once, by the failing rank
    assert not out.exists() and not list(tmp_path.iterdir())   # no output, no temp file


def test_argument_errors_print_usage_once_under_mpiexec():
    proc = hpcdist("run", STATS, "--shard-rows", "many", ranks=2, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("expected a whole number") == 1


def test_gen_refuses_an_unwritable_target():
    proc = hpcdist("gen", "/sys/x.h5:/x", "--rows", "10")
    assert proc.returncode == 2 and "not writable" in proc.stderr
