"""A job's bug is never a silent wrong answer, and every error is one a user can read.

- A partial that is a view of the reused shard buffer is copied: the answer is numpy's, bit for bit.
- A partial whose layout (names, dtypes, shapes) differs from the first one is one line naming the
  job file, who made it, the shards and the difference; exit 1; every rank stops.
- Params that size an allocation are checked against the data before any work: one line, exit 2.
- A job's exception: its traceback with hpcdist's frames folded, ending in
  ``rank N: FILE:LINE in FUNCTION: EXCEPTION: MESSAGE``; exit 1; every rank stops.
- A usage error is one line naming the subcommand's --help; the usage block only with --help.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import JOBS, ROOT, hpcdist, read_h5, run_ok

BUGS = ROOT / "tests" / "jobs"
RANKS = [None, 2, 3]           # None: plain python, a one-rank singleton


def _job(name: str) -> str:
    return str(BUGS / name)


def _own_lines(stderr: str) -> list[str]:
    """stderr without MPICH's own notice of MPI_Abort (``Abort(1) on node 1 ...``)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("Abort(")]


# ---- views of the shard buffer ------------------------------------------------------------------

@pytest.fixture(scope="module")
def integers(tmp_path_factory) -> Path:
    """Integer-valued floats: every sum is exact, so the right answer has one bit pattern."""
    path = tmp_path_factory.mktemp("view") / "x.h5"
    data = np.random.default_rng(5).integers(-1000, 1000, size=(10_000, 2)).astype(np.float64)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=data)
    return path


@pytest.mark.parametrize("ranks", RANKS)
def test_a_map_returning_a_view_of_the_shard_buffer_gets_numpys_answer(integers, ranks, tmp_path):
    out = tmp_path / "out.h5"
    run_ok("run", _job("first_row_view.py"), "--input", f"{integers}:/x", "--shard-rows", "1000",
           "--output", str(out), ranks=ranks)
    with h5py.File(integers, "r") as f:
        expected = f["x"][::1000].sum(axis=0)      # the first row of every shard
    got = read_h5(out)["sum"]
    assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes(), (got, expected)


# ---- partial layouts ----------------------------------------------------------------------------

DIFFERENCES = {
    "scalar": "'sum' has shape () (float64), expected (2,) (float64)",
    "dtype": "'sum' has shape (2,) (float32), expected (2,) (float64)",
    "missing": "no key 'n' (expected shape () (int64))",
    "extra": "an extra key 'extra' (shape (1,) (float64))",
}


def _assert_one_job_error(proc, started: float, pattern: str) -> str:
    assert time.monotonic() - started < 30, "the other ranks were not stopped"
    assert proc.returncode == 1, proc.stderr
    lines = _own_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.fullmatch(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.mark.parametrize("ranks", RANKS)
@pytest.mark.parametrize("mode", sorted(DIFFERENCES))
def test_a_partial_that_changes_layout_on_one_shard_is_one_line_naming_it(mode, ranks):
    started = time.monotonic()
    proc = hpcdist("run", _job("layout_change.py"), "--param", f"mode={mode}", "--param", "shard=8",
                   "--shard-rows", "4000", ranks=ranks, timeout=60)
    # shard 8 is never the first shard a rank maps (static blocks of 10 shards at 1-3 ranks)
    prefix = r"hpcdist: (rank \d: )?error: "
    _assert_one_job_error(proc, started, prefix + r"\S*tests/jobs/layout_change\.py: map returned a "
                          r"different partial for shard 8 than for shard \d: " + re.escape(DIFFERENCES[mode]))


@pytest.mark.parametrize("ranks", [None, 2])
def test_ranks_whose_partials_differ_from_each_other_are_named_by_their_shards(ranks):
    started = time.monotonic()
    proc = hpcdist("run", _job("layout_change.py"), "--param", "mode=block", "--param", "shard=5",
                   "--shard-rows", "4000", "--schedule", "static", ranks=ranks, timeout=60)
    # at 2 ranks each rank is consistent with itself: rank 0 finds it in what rank 1 sent
    who = "map returned" if ranks is None else "rank 1 sent"
    _assert_one_job_error(proc, started, r"hpcdist: (rank 0: )?error: \S*layout_change\.py: " + who +
                          r" a different partial for shard 5 than for shard 0: " +
                          re.escape(DIFFERENCES["scalar"]))


@pytest.mark.parametrize("ranks", [None, 2])
def test_a_combine_that_changes_the_layout_is_named_with_its_shards(ranks):
    started = time.monotonic()
    proc = hpcdist("run", _job("combine_changes_dtype.py"), "--shard-rows", "4000", "--schedule", "static",
                   ranks=ranks, timeout=60)
    _assert_one_job_error(proc, started, r"hpcdist: (rank 0: )?error: \S*combine_changes_dtype\.py: combine "
                          r"returned a different partial for shards \[0, 2\) than for shard 0: " +
                          re.escape(DIFFERENCES["dtype"]))


@pytest.mark.parametrize("ranks", [2, 3])
def test_owners_whose_keyed_results_differ_are_one_line_naming_the_rank(ranks, tmp_path):
    started = time.monotonic()
    proc = hpcdist("run", _job("keyed_layout_by_rank.py"), "-o", str(tmp_path / "out.h5"), ranks=ranks, timeout=60)
    _assert_one_job_error(proc, started, r"hpcdist: (rank \d: )?error: \S*keyed_layout_by_rank\.py: " + re.escape(
        "finalize gave results [['keys', '<i8', []], ['n', '<f4', []]] on rank 1 but "
        "[['keys', '<i8', []], ['n', '<i8', []]] on rank 0"))
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("ranks", [None, 2])
def test_a_multipass_state_keeps_its_layout_across_passes(ranks):
    started = time.monotonic()
    proc = hpcdist("run", _job("state_changes_shape.py"), "--shard-rows", "4000", ranks=ranks, timeout=60)
    _assert_one_job_error(proc, started, r"hpcdist: (rank 0: )?error: \S*state_changes_shape\.py: update "
                          r"returned a different state for pass 2 than for pass 1: 'c' has shape \(3,\) "
                          r"\(float64\), expected \(2,\) \(float64\)")


def test_topk_declares_its_variable_length_partials_and_still_runs_at_3_ranks():
    proc = run_ok("run", str(JOBS / "topk.py"), "--param", "k=5", "--shard-rows", "3",
                  "--input", "synthetic:rows=20,cols=1,seed=0,dist=int", ranks=3)
    assert "values" in proc.stdout


@pytest.mark.parametrize("ranks", [None, 2])
@pytest.mark.parametrize("bug,message", [
    ("def map(s, c): return [float(s.sum())]\ndef finalize(p, c): return {'sum': p}\n",
     "map: partials must be numpy arrays or dicts of arrays, got list"),
    ("def map(s, c): return np.asarray(s.sum())\ndef finalize(p, c): return [p]\n",
     "finalize must return a dict of arrays, got list"),
])
def test_a_function_returning_the_wrong_kind_of_value_is_one_line(bug, message, ranks, tmp_path):
    job = tmp_path / "wrong_kind.py"
    job.write_text("import numpy as np\n\ndef default_input(p):\n    return 'synthetic:rows=100,cols=1'\n\n"
                   "def combine(a, b):\n    return a + b\n\n" + bug)
    started = time.monotonic()
    proc = hpcdist("run", str(job), ranks=ranks, timeout=60)
    _assert_one_job_error(proc, started, r"hpcdist: (rank \d: )?error: \S*wrong_kind\.py: " + re.escape(message))


def test_layout_differences_read_as_words():
    from hpcdist.partials import difference, layout

    scalar, pair = np.float64(1.0), np.zeros(2)
    assert difference(layout(np.asarray(scalar)), layout(pair)) == \
        "the array has shape () (float64), expected (2,) (float64)"
    assert difference(layout(pair), layout({"sum": pair, "n": np.asarray(1)})) == \
        "got an array of shape (2,) (float64), expected a dict of 'n', 'sum'"
    kept = layout({"values": np.zeros(3), "k": np.asarray(5)}, varying=("values",))
    assert kept == layout({"values": np.zeros(7), "k": np.asarray(5)}, varying=("values",))
    assert difference(layout({"values": np.zeros((3, 2))}, ("values",)), layout({"values": np.zeros(3)}, ("values",))) \
        == "'values' has shape (*, 2) (float64), expected (*,) (float64)"


# ---- params that size an allocation -------------------------------------------------------------

SIZING = {
    "topk k=1e12": ("topk.py", ["--param", "k=1e12"],
                    "param k must be between 1 and the number of rows (2,000,000), got 1,000,000,000,000"),
    "topk k > rows": ("topk.py", ["--param", "k=21", "--input", "synthetic:rows=20,cols=1,dist=int"],
                      "param k must be between 1 and the number of rows (20), got 21"),
    "topk k beyond memory": ("topk.py", ["--param", "k=1e11", "--input", "synthetic:rows=1e12,cols=1"],
                             "param k=100,000,000,000 needs about 6,400.0 GB to merge two partials"),
    "kmeans k > rows": ("kmeans.py", ["--param", "k=11", "--input", "synthetic:rows=10,cols=2"],
                        "param k must be between 1 and min(rows, sample) = 10, got 11"),
    "kmeans k=1e12": ("kmeans.py", ["--param", "k=1e12"],
                      "param k must be between 1 and min(rows, sample) = 20000, got 1000000000000"),
    "kmeans sample beyond memory": ("kmeans.py", ["--param", "sample=1e12", "--input", "synthetic:rows=1e12,cols=3"],
                                    "param sample=1,000,000,000,000 needs about 88,000.0 GB for the k-means++ start"),
}


@pytest.mark.parametrize("ranks", [None, 2])
@pytest.mark.parametrize("case", sorted(SIZING))
def test_a_param_that_sizes_memory_is_refused_before_any_work(case, ranks):
    job, extra, message = SIZING[case]
    started = time.monotonic()
    proc = hpcdist("run", str(JOBS / job), *extra, ranks=ranks, timeout=60)
    assert time.monotonic() - started < 30
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith("hpcdist: error: ") and message in proc.stderr, proc.stderr


# ---- a job's exception --------------------------------------------------------------------------

def _assert_folded_report(stderr: str, rank: int, job: str, line: int, function: str, exception: str) -> None:
    ours = [x for x in stderr.splitlines() if not x.startswith("Abort(")]
    assert all(x.startswith(f"rank {rank}: ") for x in ours), stderr       # the failing rank only
    assert stderr.count("Traceback") == 1, stderr
    assert re.search(rf"rank {rank}:   \.\.\. hpcdist internals: \d+ frames \.\.\.", stderr), stderr
    assert "hpcdist/runtime.py" not in stderr and "hpcdist/comm.py" not in stderr, stderr
    assert f'{job}", line {line}, in {function}' in stderr, stderr          # the job's frame is kept
    last = re.escape(f"{job}:{line} in {function}: {exception}")
    assert re.fullmatch(rf"rank {rank}: \S*{last}", ours[-1]), ours[-1]


@pytest.mark.parametrize("ranks", RANKS)
def test_an_exception_on_rank_1_only_is_its_folded_traceback_and_one_line(ranks, tmp_path):
    out = tmp_path / "out.h5"
    started = time.monotonic()
    proc = hpcdist("run", _job("type_error_on_shard.py"), "--shard-rows", "4000", "--schedule", "static",
                   "--output", str(out), ranks=ranks, timeout=60)
    assert time.monotonic() - started < 30
    assert proc.returncode == 1, proc.stderr
    _assert_folded_report(proc.stderr, 0 if ranks is None else 1, "type_error_on_shard.py", 13, "map",
                          "TypeError: unsupported operand type(s) for +: 'float' and 'str'")
    assert "total = total + \"1\"" in proc.stderr                           # the job's source line
    assert not list(tmp_path.iterdir())                                     # no output, no temp file


@pytest.mark.parametrize("ranks", RANKS)
def test_an_exception_on_the_last_shard_ends_every_rank(ranks):
    started = time.monotonic()
    proc = hpcdist("run", _job("fail_on_last_shard.py"), "--shard-rows", "4096", "--schedule", "static",
                   ranks=ranks, timeout=60)
    assert time.monotonic() - started < 30
    assert proc.returncode == 1, proc.stderr
    _assert_folded_report(proc.stderr, (ranks or 1) - 1, "fail_on_last_shard.py", 12, "map",
                          "ValueError: kernel failed on shard 9")


def test_numbas_message_is_kept_and_its_frames_folded():
    proc = hpcdist("run", _job("numba_typing_error.py"), timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "No implementation of function" in proc.stderr and ">>> add(float64, unicode_type)" in proc.stderr
    assert re.search(r"rank 0:   \.\.\. numba internals: \d+ frames? \.\.\.", proc.stderr), proc.stderr
    assert "numba/core/dispatcher.py" not in proc.stderr
    _assert_folded_report(proc.stderr, 0, "numba_typing_error.py", 17, "map",
                          "TypingError: Failed in nopython mode pipeline (step: nopython frontend) ...")


# ---- usage errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("ranks", [None, 2])
@pytest.mark.parametrize("argv,message", [
    (["run"], "hpcdist: error: the following arguments are required: job (hpcdist run --help for usage)"),
    (["run", "jobs/stats.py", "--shard-rows", "many"],
     "hpcdist: error: argument --shard-rows: expected a whole number, got 'many' (hpcdist run --help for usage)"),
    (["run", "jobs/stats.py", "--schedule", "fast"], "(hpcdist run --help for usage)"),
    (["frobnicate"], "hpcdist: error: argument command: invalid choice: 'frobnicate'"),
    (["gen", "x.h5:/x"], "the following arguments are required: --rows (hpcdist gen --help for usage)"),
])
def test_a_usage_error_is_exactly_one_line(argv, message, ranks):
    proc = hpcdist(*argv, ranks=ranks, timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert message in proc.stderr and "usage:" not in proc.stderr, proc.stderr


def test_usage_is_printed_with_help():
    proc = run_ok("run", "--help")
    assert proc.stdout.startswith("usage: hpcdist run")
