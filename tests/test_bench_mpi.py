"""One real `mpiexec -n 2 hpcdist bench strong` (and weak) on tiny data: the record is valid, the
timed points are there, results have the same bits at 1 and 2 ranks, and a point with more
ranks than cores is flagged and left out of the efficiency figures."""

from __future__ import annotations

import json

import pytest

from hpcdist.bench import records

from conftest import JOBS, hpcdist

pytestmark = pytest.mark.timeout(180)


def test_mpiexec_2_bench_strong_on_tiny_data(tmp_path):
    out = tmp_path / "strong"
    proc = hpcdist("bench", "strong", str(JOBS / "stats.py"), "--rows", "60_000", "--cols", "2", "--ranks", "1,2",
                   "--repeat", "2", "--out", str(out), "--data-dir", str(tmp_path / "data"), "--max-load", "0",
                   "--stream-mib", "8", "--param", "lo=-4", "--param", "hi=4", "--cores", "1",
                   ranks=2, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [path] = out.glob("strong-stats-n2-*.json")
    rec = records.load(str(path))
    assert rec["kind"] == "strong" and rec["launch"]["ranks"] == 2 and rec["same_bits_at_every_rank_count"]
    assert rec["git_commit"] and rec["versions"]["mpi_library"] and rec["versions"]["numba"]
    assert len(rec["loadavg_start"]) == 3 and rec["machine"]["cores"] == 1
    one, two = rec["points"]
    assert (one["ranks"], two["ranks"]) == (1, 2)
    for p in (one, two):
        assert p["time_s"]["n"] == 2 and p["time_s"]["min"] <= p["time_s"]["median"] <= p["time_s"]["max"]
        assert p["rows"] == 60_000 and p["data_bytes"] == 60_000 * 16 and len(p["rank"]["busy_s"]) == p["ranks"]
        assert p["memory_bandwidth"]["read"]["per_rank_GBps"] > 0 and p["allreduce"]["latency_8B_us"] > 0
        assert p["compile_s"] is not None and len(p["warmup_s"]) == 1
        assert p["kernel_fraction_of_memory_bandwidth"] > 0 and p["results_identical_across_repeats"]
        assert sum(p["rank"]["shards"]) == p["shards"]
    # --cores 1: two ranks on a one-core node are oversubscribed, so no efficiency for them
    assert not one["oversubscribed"] and two["oversubscribed"]
    md = (out / "summary.md").read_text()
    row2 = next(ln for ln in md.splitlines() if ln.startswith("| 2 |"))
    assert "oversubscribed: excluded" in row2 and row2.split("|")[4].strip() == "-"
    assert "| 1 | 1 |" in proc.stdout
    assert {p.name for p in out.iterdir()} >= {"summary.md", "summary.csv", "speedup.png", "efficiency.png",
                                               "breakdown.png"}
    assert not [p for p in out.iterdir() if p.name.startswith(".bench-tmp")]


def test_mpiexec_2_bench_weak_and_ranks_beyond_the_launch_are_refused(tmp_path):
    out = tmp_path / "weak"
    proc = hpcdist("bench", "weak", str(JOBS / "montecarlo_pi.py"), "--rows-per-rank", "200_000", "--ranks", "1,2",
                   "--repeat", "1", "--out", str(out), "--max-load", "0", "--no-limits", ranks=2, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads(next(out.glob("weak-montecarlo_pi-*.json")).read_text())
    assert [p["input"] for p in rec["points"]] == ["range:200000", "range:400000"]
    assert rec["points"][1]["data_bytes"] == 0 and rec["points"][1]["GBps"] is None
    proc = hpcdist("bench", "strong", str(JOBS / "stats.py"), "--rows", "1000", "--ranks", "1,4",
                   "--out", str(tmp_path / "x"), "--max-load", "0", ranks=2, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--ranks 4: more than the 2 rank(s) launched" in proc.stderr
