"""``hpcdist report OUT.h5 --out DIR``: a text summary and PNGs (timeline, busy/idle, shards) for
1-rank, 3-rank, resumed and very wide runs; a file without a run record is one line, exit 2."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from conftest import JOBS, hpcdist, run_ok
from hpcdist.output import write_result
from hpcdist.runlog import SHARD_COLUMNS, RunRecord
from hpcdist.timings import RankTimings

PNGS = ("timeline.png", "busy.png", "shards.png")
FLAKY_JOB = '''
"""A sum whose map fails at shard FAIL_AT (an environment variable), for a run to resume."""
import os
import numpy as np


def default_input(params):
    return "synthetic:rows=24000,cols=2,seed=2"


def map(shard, ctx):
    if os.environ.get("FAIL_AT") == str(ctx.index):
        raise RuntimeError("injected failure")
    return {"sum": shard.sum(axis=0)}


def combine(a, b):
    return {"sum": a["sum"] + b["sum"]}


def finalize(p, ctx):
    return {"sum": p["sum"]}
'''


def assert_pngs(directory: Path) -> None:
    for name in PNGS:
        data = (directory / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


@pytest.mark.parametrize("ranks", [1, 3])
def test_report_writes_the_pngs_and_a_summary(ranks, tmp_path):
    out = tmp_path / "out.h5"
    run_ok("run", str(JOBS / "stats.py"), "--input", "synthetic:rows=60000,cols=2", "--shard-rows", "2000",
           "-o", str(out), ranks=ranks)
    target = tmp_path / "new" / "dir"                       # created if missing
    text = run_ok("report", str(out), "--out", str(target)).stdout
    assert_pngs(target)
    assert f"job stats, {ranks} rank(s)" in text and "30 shards x 2 pass(es)" in text
    for phrase in ("reading", "computing", "idle/waiting", "imbalance: busiest rank", "stragglers", "GB/s"):
        assert phrase in text, phrase
    assert re.search(r"throughput: 120,000 rows read", text)   # 60,000 rows, two passes


def test_a_resumed_run_marks_the_shards_from_the_checkpoint(tmp_path, monkeypatch):
    job, out, ck = tmp_path / "flaky.py", tmp_path / "out.h5", tmp_path / "ck.h5"
    job.write_text(FLAKY_JOB)
    args = ("run", str(job), "--shard-rows", "2000", "-o", str(out), "--checkpoint", str(ck),
            "--checkpoint-every-shards", "1", "--schedule", "static")
    monkeypatch.setenv("FAIL_AT", "8")
    assert hpcdist(*args).returncode == 1 and ck.exists()
    monkeypatch.delenv("FAIL_AT")
    run_ok(*args)
    text = run_ok("report", str(out), "--out", str(tmp_path / "rep")).stdout
    assert_pngs(tmp_path / "rep")
    found = re.search(r"resumed: (\d+) shard\(s\) came from the checkpoint .*, (\d+) were computed", text)
    assert found and int(found.group(1)) >= 1 and int(found.group(1)) + int(found.group(2)) == 12, text


def test_many_ranks_get_a_heat_map_and_the_default_directory(tmp_path):
    ranks, shards = 300, 1200
    rows = np.zeros((shards, len(SHARD_COLUMNS)))
    rows[:, 1] = np.arange(shards)
    rows[:, 2] = np.arange(shards) % ranks
    rows[:, 3] = np.arange(shards) // ranks * 0.1
    rows[:, 4] = rows[:, 3] + 0.02
    rows[:, 5] = rows[:, 4] + 0.05 + 0.2 * (rows[:, 2] == 7)        # rank 7 is slow
    record = RunRecord(shards=rows, timings=[RankTimings(shards=4, read_s=0.08, compute_s=0.2)] * ranks,
                       hosts=["n"] * ranks)
    out = tmp_path / "wide.h5"
    attrs = {"job": "sim", "hpcdist_version": "0", "ranks": ranks, "shards": shards, "passes": 1, "rows": 12000,
             "shard_rows": 10, "elapsed_s": 0.5, "row_shape": [1], "dtype": "<f8"}
    write_result(str(out), {"x": np.zeros(1)}, attrs, record.datasets())
    text = run_ok("report", str(out)).stdout
    assert_pngs(tmp_path / "wide.report")
    assert "stragglers (finished their last shard later than the median rank" in text and "rank 7 on n" in text


def test_a_result_without_a_run_record_is_one_line(tmp_path):
    old = tmp_path / "old.h5"                                  # as written before runs kept a record
    write_result(str(old), {"x": np.zeros(1)}, {"job": "sim", "hpcdist_version": "0.0.9"})
    proc = hpcdist("report", str(old), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no run record" in proc.stderr
