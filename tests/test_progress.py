"""The progress line on rank 0's stderr: forced with --progress=SECONDS, off with --no-progress,
and quiet by default in a log (one line per 30 s) so short runs print nothing extra."""

from __future__ import annotations

import io
import re

import pytest

from conftest import JOBS, ROOT, hpcdist, run_ok
from hpcdist.progress import ProgressLine, Work

PI = str(JOBS / "montecarlo_pi.py")
LINE = re.compile(r"pass \d+/\S+, [\d,]+/[\d,]+ shards +\d+%, \S+ rows/s \S+ GB/s, ETA \S+")
SLOW = str(ROOT / "tests" / "jobs" / "slow_sum.py")
# a run of a few seconds: 60 shards of 40 ms each
ARGS = ["--shard-rows", "1000", "--param", "sleep=0.04", "--param", "shards=60"]


@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
def test_progress_lines_appear_with_progress_and_not_without(ranks):
    on = run_ok("run", SLOW, *ARGS, "--progress=0.2", ranks=ranks)
    lines = [ln for ln in on.stderr.splitlines() if LINE.search(ln)]
    assert len(lines) >= 2, on.stderr
    assert all(ln.startswith("slow_sum: pass 1/1, ") for ln in lines)
    if ranks > 1:
        assert any("slowest rank" in ln for ln in lines)
        # the other ranks' counts reached rank 0 (at 4 ranks, rank 3's through rank 2): the line
        # counts more shards than rank 0's own block of 60 / ranks
        shown = [int(re.search(r"([\d,]+)/60 shards", ln).group(1).replace(",", "")) for ln in lines]
        assert max(shown) > 60 // ranks, lines
    off = run_ok("run", SLOW, *ARGS, "--no-progress", ranks=ranks)
    assert not [ln for ln in off.stderr.splitlines() if LINE.search(ln)], off.stderr


def test_gen_shows_progress_in_rows(tmp_path):
    on = run_ok("gen", str(tmp_path / "a.h5:/x"), "--rows", "6000000", "--progress=0.05")
    assert re.search(r"^gen: [\d,]+/6,000,000 rows +\d+%, \S+ rows/s \S+ GB/s, ETA", on.stderr, re.M), on.stderr
    off = run_ok("gen", str(tmp_path / "b.h5:/x"), "--rows", "6000000", "--no-progress")
    assert "rows/s" not in off.stderr


def test_a_short_run_in_a_log_prints_no_progress_line_by_default():
    proc = run_ok("run", str(JOBS / "stats.py"), "--input", "synthetic:rows=20000,cols=2")
    assert not LINE.search(proc.stderr)


def test_the_line_names_the_slowest_rank_and_how_far_behind():
    work = Work(shards=100, shard_rows=1000, rows=100_000, row_bytes=32, multipass=False)
    line = ProgressLine(work, 1.0, lambda: [0, 0, 0], stream=io.StringIO(), label="stats")
    line.begin_pass(0, 100)
    text = line.format([30, 12, 28], elapsed=7.0)
    assert text == ("stats: pass 1/1, 70/100 shards  70%, 10.0k rows/s 0.00 GB/s, ETA 0:03, "
                    "slowest rank 1 (18 shards behind)")


def test_progress_needs_a_number_of_seconds():
    proc = hpcdist("run", PI, "--progress=soon")
    assert proc.returncode == 2 and "--progress" in proc.stderr
