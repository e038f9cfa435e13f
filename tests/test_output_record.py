"""The output records what happened per shard and per rank, as datasets (O(shards) + O(ranks)),
while the attributes keep only scalars and ``hpcdist info`` still prints just the results."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from conftest import JOBS, ROOT, read_h5, run_ok
from hpcdist.output import read_record, read_result, write_result
from hpcdist.runlog import SHARD_COLUMNS, RunRecord
from hpcdist.timings import RankTimings

STATS = str(JOBS / "stats.py")
SLOW_GROUPBY = str(ROOT / "tests" / "jobs" / "slow_groupby.py")


@pytest.mark.parametrize("ranks", [1, 3])
def test_every_shard_is_recorded_once_per_pass_with_its_rank_and_times(ranks, tmp_path):
    out = tmp_path / "out.h5"
    run_ok("run", STATS, "--input", "synthetic:rows=40000,cols=2", "--shard-rows", "2000", "-o", str(out),
           ranks=ranks)
    rec = read_record(str(out))
    attrs = read_result(str(out))[1]
    for p in range(attrs["passes"]):
        mine = rec["shards/pass"] == p
        assert sorted(rec["shards/shard"][mine]) == list(range(20))
    assert set(rec["shards/rank"]) <= set(range(ranks)) and not rec["shards/resumed"].any()
    start, mid, end = rec["shards/read_start"], rec["shards/read_end"], rec["shards/compute_end"]
    assert (0 <= start).all() and (start <= mid).all() and (mid <= end).all() and end.max() <= attrs["elapsed_s"]
    assert len(rec["ranks/host"]) == ranks and all(rec["ranks/host"])
    assert list(rec["ranks/shards"]) == attrs["rank_shards"]
    assert rec["ranks/shards"].sum() == 20 * attrs["passes"]


def test_attributes_stay_scalars_and_info_prints_only_the_results(tmp_path):
    out = tmp_path / "out.h5"
    run_ok("run", STATS, "--input", "synthetic:rows=20000,cols=2", "--shard-rows", "2000", "-o", str(out), ranks=2)
    with h5py.File(out) as f:
        grows = [k for k, v in f.attrs.items() if k.startswith("rank_") or np.size(v) > 2]   # row_shape: 1 value
        assert not grows, f"attributes that grow with the ranks: {grows}"
        assert "hpcdist/shards/rank" in f and "hpcdist/ranks/busy_s" in f
    assert "hpcdist" not in read_h5(out)
    text = run_ok("info", str(out)).stdout
    assert "nan_count" in text and "shards/" not in text and "read_start" not in text


def test_a_20000_rank_record_writes_and_reads_back(tmp_path):
    ranks, shards = 20_000, 60_000
    rng = np.random.default_rng(1)
    rows = np.zeros((shards, len(SHARD_COLUMNS)))
    rows[:, 1] = np.arange(shards)
    rows[:, 2] = rng.integers(0, ranks, shards)
    rows[:, 3] = rng.random(shards)
    rows[:, 4] = rows[:, 3] + 0.1
    rows[:, 5] = rows[:, 4] + 0.2
    timings = [RankTimings(shards=3, read_s=0.3, compute_s=0.6, idle_s=0.01 * (r % 7), claims=1, steals=r % 2)
               for r in range(ranks)]
    record = RunRecord(shards=rows, timings=timings, hosts=[f"node{r // 64:04d}" for r in range(ranks)])
    out = tmp_path / "big.h5"
    write_result(str(out), {"x": np.arange(3.0)}, {"job": "sim", "hpcdist_version": "0", "ranks": ranks,
                                                   "rank_shards": [3] * ranks}, record.datasets())
    assert out.stat().st_size < 8e6            # a few bytes per shard and per rank
    data, attrs = read_result(str(out))
    assert list(data) == ["x"] and attrs["ranks"] == ranks and len(attrs["rank_shards"]) == ranks
    rec = read_record(str(out))
    assert np.array_equal(rec["shards/rank"], rows[:, 2].astype(np.int64))
    assert np.array_equal(rec["shards/compute_end"], rows[:, 5])
    assert rec["ranks/host"][-1] == f"node{(ranks - 1) // 64:04d}" and rec["ranks/steals"].sum() == ranks // 2


@pytest.mark.parametrize("ranks", [1, 3])
def test_a_keyed_run_records_every_shard_and_rank_and_shows_its_progress(ranks, tmp_path):
    path, out = tmp_path / "events.h5", tmp_path / "out.h5"
    with h5py.File(path, "w") as f:
        f["e"] = np.column_stack([np.arange(24_000) % 50, np.ones(24_000)]).astype(np.float64)
    proc = run_ok("run", SLOW_GROUPBY, "--input", f"{path}:/e", "--param", "key=0", "--param", "sleep=0.05",
                  "--shard-rows", "2000", "--progress=0.02", "-o", str(out), ranks=ranks)
    assert "slow_groupby: pass 1/1, " in proc.stderr
    rec = read_record(str(out))
    attrs = read_result(str(out))[1]
    assert attrs["shards"] == 12 and sorted(rec["shards/shard"]) == list(range(12))
    assert set(rec["shards/rank"]) <= set(range(ranks)) and not rec["shards/resumed"].any()
    start, mid, end = rec["shards/read_start"], rec["shards/read_end"], rec["shards/compute_end"]
    assert (0 <= start).all() and (start <= mid).all() and (mid <= end).all() and end.max() <= attrs["elapsed_s"]
    assert len(rec["ranks/host"]) == ranks and list(rec["ranks/shards"]) == attrs["rank_shards"]
    assert rec["ranks/shards"].sum() == 12 and (rec["ranks/busy_s"] > 0).all()
