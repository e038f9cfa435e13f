"""Records and reports: the JSON schema, and `hpcdist bench report` rebuilding tables and plots
from the saved records of several launches."""

from __future__ import annotations

import builtins
import copy
import csv
import json

import pytest

from hpcdist.bench import records, report
from hpcdist.errors import UserError

from conftest import hpcdist

pytestmark = pytest.mark.timeout(60)


def point(ranks, t, oversubscribed=False, compute=None):
    compute = compute if compute is not None else 0.8 * t
    return {
        "ranks": ranks, "nodes": 1 if ranks <= 2 else 2, "ranks_per_node": min(ranks, 2), "cores_per_node": 2,
        "hostnames": ["n1"] if ranks <= 2 else ["n1", "n2"], "oversubscribed": oversubscribed,
        "rows": 1_000_000, "data_bytes": 8_000_000, "passes": 1, "bytes_processed": 8_000_000,
        "time_s": {"min": 0.95 * t, "median": t, "max": 1.1 * t, "n": 3, "values": [0.95 * t, t, 1.1 * t]},
        "phases_s": {"read": 0.1 * t, "compute": compute, "reduce": 0.01, "checkpoint": 0.0, "output": 0.02,
                     "other": 0.05, "idle_max": 0.0},
        "rank": {"shards": [4] * ranks, "busy_s": [0.9 * t] * ranks, "idle_s": [0.0] * ranks},
        "imbalance": 1.0, "rows_per_s": 1_000_000 / t, "GBps": 0.008 / t, "kernel_GBps_per_rank": 8e-3 / ranks / compute,
        "memory_bandwidth": {"ranks": ranks, "read": {"per_rank_GBps": 10.0, "all_ranks_GBps": 10.0 * ranks}},
        "kernel_fraction_of_memory_bandwidth": 8e-4 / ranks / compute,
        "allreduce": {"ranks": ranks, "latency_8B_us": 1.5, "algbw_GBps": 3.0},
        "result_sha256": "ab" * 32,
    }


def record(kind="strong", points=(), date="2026-01-01T00:00:00+00:00", launch=2):
    return {
        "schema": records.SCHEMA_ID, "kind": kind, "job": "stats", "job_path": "jobs/stats.py",
        "params": json.dumps({"bins": 64, "lo": -5.0, "hi": 5.0}),
        "data": {"kind": "h5", "cols": 1, "rows": 1_000_000 if kind == "strong" else None,
                 "rows_per_rank": 1_000_000 if kind == "weak" else None, "input": None},
        "options": {"repeat": 3, "warmup": 1, "schedule": "auto"}, "date": date, "git_commit": "0" * 40,
        "machine": {"hostname": "n1", "cores": 2}, "launch": {"ranks": launch, "hostnames": ["n1"]},
        "versions": {"numpy": "2"}, "loadavg_start": [0.1, 0.2, 0.3], "points": list(points),
    }


def test_a_record_round_trips_and_its_schema_is_checked(tmp_path):
    rec = record(points=[point(1, 10.0), point(2, 5.5)])
    rec["points"][0]["imbalance"] = float("nan")          # JSON has no NaN: written as null
    path = records.save(rec, str(tmp_path))
    text = open(path).read()
    assert "NaN" not in text
    back = records.load(path)
    assert back["points"][0]["imbalance"] is None and back["points"][1]["time_s"]["median"] == 5.5
    assert path.endswith(".json") and "strong-stats-n2-n1-" in path
    broken = [("schema", "other/9", "schema"), ("kind", "sideways", "kind"), ("points", [], "points: empty")]
    for key, value, words in broken:
        bad = copy.deepcopy(rec)
        bad[key] = value
        with pytest.raises(UserError, match=words):
            records.check(bad, "r.json")
    for mutate, words in [
        (lambda r: r["points"][0].pop("oversubscribed"), "points\\[0\\]: missing field 'oversubscribed'"),
        (lambda r: r["points"][1].__setitem__("ranks", "2"), "field 'ranks' should be int"),
        (lambda r: r["points"][1]["time_s"].__setitem__("median", -1), "time_s.median"),
        (lambda r: r["points"][1]["time_s"].__setitem__("min", 99.0), "min <= median <= max"),
        (lambda r: r["points"][0]["phases_s"].pop("reduce"), "phases_s.reduce"),
        (lambda r: r.pop("git_commit"), "git_commit"),
    ]:
        bad = copy.deepcopy(rec)
        mutate(bad)
        with pytest.raises(UserError, match=words):
            records.check(bad, "r.json")


def test_report_composes_records_of_several_launches_into_one_table(tmp_path):
    d = tmp_path / "study"
    d.mkdir()
    # one launch gave 1 and 2 ranks, another (e.g. a second Slurm job) 4 ranks, oversubscribed,
    # and an older record of 2 ranks that the newer one replaces
    records.save(record(points=[point(1, 10.0), point(2, 5.5)], date="2026-01-02T00:00:00+00:00"), str(d))
    records.save(record(points=[point(2, 9.0)], date="2026-01-01T00:00:00+00:00"), str(d))
    records.save(record(points=[point(4, 4.0, oversubscribed=True)], launch=4, date="2026-01-03T00:00:00+00:00"),
                 str(d))
    records.save(record("weak", points=[point(1, 10.0), point(2, 12.5)]), str(d))
    (d / "notes.json").write_text('{"not": "a record"}')              # ignored: no schema field
    proc = hpcdist("bench", "report", str(d))
    assert proc.returncode == 0, proc.stderr
    md = (d / "summary.md").read_text()
    assert proc.stdout in md
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    strong = [ln for ln in lines if ln.split("|")[1].strip().isdigit()][:3]
    assert [ln.split("|")[1].strip() for ln in strong] == ["1", "2", "4"]
    cells = [c.strip() for c in strong[1].split("|")]
    assert cells[3].startswith("5.500") and cells[4] == "1.82" and cells[5] == "0.91"     # speedup, efficiency
    assert "oversubscribed: excluded" in strong[2] and strong[2].split("|")[4].strip() == "-"
    assert "0.80" in md                                                                   # weak T1/Tp
    rows = list(csv.DictReader(open(d / "summary.csv")))
    strong_rows = [r for r in rows if r["kind"] == "strong"]
    assert [r["ranks"] for r in strong_rows] == ["1", "2", "4"]
    assert float(strong_rows[1]["efficiency"]) == pytest.approx(10 / 11)
    assert float(strong_rows[1]["karp_flatt"]) == pytest.approx((1 / (10 / 5.5) - 0.5) / 0.5)
    assert strong_rows[2]["oversubscribed"] == "True" and strong_rows[2]["efficiency"] == ""
    assert strong_rows[2]["excluded"] == "oversubscribed"
    for png in ("speedup.png", "efficiency.png", "breakdown.png"):
        assert (d / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_plots_are_skipped_with_one_line(tmp_path, monkeypatch):
    records.save(record(points=[point(1, 10.0), point(2, 5.5)]), str(tmp_path))
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    said = []
    built = report.build(str(tmp_path), said.append)
    assert built["plots"] == [] and len(said) == 1 and "matplotlib" in said[0] and "skipped" in said[0]
    assert (tmp_path / "summary.md").exists() and not (tmp_path / "speedup.png").exists()


def test_report_of_nothing_or_of_a_broken_record_is_one_line_and_exit_2(tmp_path):
    proc = hpcdist("bench", "report", str(tmp_path / "missing"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no such directory" in proc.stderr
    proc = hpcdist("bench", "report", str(tmp_path))
    assert proc.returncode == 2 and "no benchmark records" in proc.stderr
    rec = record(points=[point(1, 10.0)])
    del rec["points"][0]["time_s"]
    (tmp_path / "bad.json").write_text(json.dumps(rec))
    proc = hpcdist("bench", "report", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "bad.json" in proc.stderr and "time_s" in proc.stderr
