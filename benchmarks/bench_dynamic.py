"""Dynamic vs static schedule: a 4x slower rank, and the cost of dynamic when nothing is slow.

One run measures everything with the contenders interleaved (static, dynamic, ... with the order
rotated each round): the machine is shared and its speed drifts, so only ratios taken within one
run mean anything. Before each round it waits while the 1-minute load average is above
``--max-load`` (others running heavy things) and records the load it started with.

    python benchmarks/bench_dynamic.py                  # ~6 min; writes benchmarks/results/dynamic.json
    python benchmarks/bench_dynamic.py --repeats 1 --shards 100     # a quick look

(a) heterogeneous: tests/jobs/uneven_sum.py, every shard ``--work`` seconds (sleeping, so ranks
    need no core of their own and 3 ranks on 2 cores is fine), 4x longer on the last rank, at 2
    and 3 ranks. The ideal is total work / total speed = shards * work / (ranks - 1 + 1/4), also
    given as measured in the run itself (shards / sum of each rank's shards per busy second).
    Targets: dynamic within 15% of the ideal, >= 1.5x faster than static.
(b) homogeneous, the same job with no slow rank at 2 and 3 ranks (pure scheduling cost), and
    jobs/stats.py on a real file at 2 ranks (CPU- and memory-bound). Target: dynamic <= 2% slower.
(c) heterogeneous and CPU-bound: the same job spinning instead of sleeping at 2 ranks.

Times are hpcdist's own ``elapsed_s`` (validation to output written; what the schedule can change)
and the map phase (the longest rank's busy + idle), plus the launcher's wall time for reference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
UNEVEN = ROOT / "tests" / "jobs" / "uneven_sum.py"
STATS = ROOT / "jobs" / "stats.py"
FACTOR = 4.0

from bench_core import loadavg, mpiexec, wait_for_quiet  # noqa: E402  (shared launch helpers)



def run(ranks: int, job: Path, args: list[str], out: Path) -> dict:
    """One ``mpiexec -n ranks hpcdist run``; its output attributes plus the launcher's wall time."""
    import h5py

    cmd = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "hpcdist", "run", str(job), *args,
           "--output", str(out)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    with h5py.File(out) as f:
        a = dict(f.attrs)
    busy = [float(x) for x in a["rank_busy_s"]]
    idle = [float(x) for x in a["rank_idle_s"]]
    shards = [int(x) for x in a["rank_shards"]]
    speed = sum(n / b for n, b in zip(shards, busy) if b > 0)
    return {"schedule": str(a["schedule"]), "elapsed_s": float(a["elapsed_s"]), "wall_s": wall,
            "map_s": max(b + i for b, i in zip(busy, idle)),
            "measured_ideal_s": (sum(shards) / speed) if speed else None,
            "rank_shards": shards, "rank_busy_s": busy, "rank_idle_s": idle,
            "rank_claims": [int(x) for x in a["rank_claims"]], "rank_steals": [int(x) for x in a["rank_steals"]],
            "load": loadavg()[0]}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def summarise(name: str, runs: dict[str, list[dict]], ideal: float | None) -> dict:
    st, dy = runs["static"], runs["dynamic"]
    out = {"static_elapsed_s": median(st, "elapsed_s"), "dynamic_elapsed_s": median(dy, "elapsed_s"),
           "static_map_s": median(st, "map_s"), "dynamic_map_s": median(dy, "map_s"),
           "static_wall_s": median(st, "wall_s"), "dynamic_wall_s": median(dy, "wall_s")}
    # ratios within a round (runs seconds apart), then their median: robust to the machine's drift
    out["speedup"] = statistics.median(s["elapsed_s"] / d["elapsed_s"] for s, d in zip(st, dy))
    out["dynamic_overhead"] = statistics.median(d["elapsed_s"] / s["elapsed_s"] - 1 for s, d in zip(st, dy))
    out["dynamic_map_overhead"] = statistics.median(d["map_s"] / s["map_s"] - 1 for s, d in zip(st, dy))
    out["steals"] = [sum(d["rank_steals"]) for d in dy]
    out["dynamic_rank_shards"] = dy[len(dy) // 2]["rank_shards"]
    if ideal is not None:
        out["ideal_s"] = ideal
        out["measured_ideal_s"] = median(dy, "measured_ideal_s")
        out["dynamic_over_ideal"] = out["dynamic_elapsed_s"] / ideal
        out["dynamic_map_over_ideal"] = out["dynamic_map_s"] / ideal
    print(f"{name}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in out.items()),
          file=sys.stderr, flush=True)
    return out


def ensure_data(path: Path, rows: int) -> None:
    """The stats input (rows x 4 float64, as bench_core.py makes it); reused when the shape matches."""
    import h5py

    if path.exists():
        try:
            with h5py.File(path, "r") as f:
                if f["/x"].shape == (rows, 4):
                    return
        except (OSError, KeyError):
            pass
        raise SystemExit(f"{path} exists with another shape: give --data another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"writing {path} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "hpcdist", "gen", f"{path}:/x", "--rows", str(rows), "--cols", "4"],
                   check=True, cwd=ROOT, capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shards", type=int, default=240)
    ap.add_argument("--work", type=float, default=0.02, help="seconds per shard on a normal rank")
    ap.add_argument("--stats-rows", type=int, default=1 << 26, help="rows x 4 float64 for jobs/stats.py")
    ap.add_argument("--data", default=str(ROOT / "bench-data" / "big.h5"), help="stats input (HDF5, /x)")
    ap.add_argument("--max-load", type=float, default=1.0)
    ap.add_argument("--wait", type=float, default=900, help="longest wait for a quiet machine, seconds")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dynamic.json"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_dynamic_"))
    data = Path(args.data)
    ensure_data(data, args.stats_rows)
    rows = args.shards * 100
    base = ["--input", f"synthetic:rows={rows},cols=2,seed=5", "--shard-rows", "100",
            "--param", f"shards={args.shards}", "--param", f"work={args.work}"]
    configs = {}
    for ranks in (2, 3):
        slow = ["--param", f"slow_rank={ranks - 1}", "--param", f"factor={FACTOR}"]
        ideal = args.shards * args.work / (ranks - 1 + 1 / FACTOR)
        configs[f"slow_x4_sleep_{ranks}ranks"] = (ranks, UNEVEN, base + slow, ideal)
        configs[f"homogeneous_sleep_{ranks}ranks"] = (ranks, UNEVEN, base, None)
    configs["slow_x4_spin_2ranks"] = (2, UNEVEN, [*base, "--param", "slow_rank=1", "--param", f"factor={FACTOR}",
                                                  "--param", "mode=spin"], args.shards * args.work / (1 + 1 / FACTOR))
    configs["homogeneous_stats_2ranks"] = (2, STATS, ["--input", f"{data}:/x", "--param", "lo=-5",
                                                      "--param", "hi=5"], None)

    print("warming numba's caches ...", file=sys.stderr, flush=True)
    run(1, STATS, ["--input", f"{data}:/x", "--param", "lo=-5", "--param", "hi=5"], tmp / "o.h5")
    run(1, UNEVEN, [*base, "--param", "work=0"], tmp / "o.h5")
    load_before = wait_for_quiet(args.max_load, args.wait)
    print(f"load average {load_before}", file=sys.stderr, flush=True)
    results: dict[str, dict[str, list[dict]]] = {k: {"static": [], "dynamic": []} for k in configs}
    round_loads = []
    for rep in range(args.repeats):
        round_loads.append(wait_for_quiet(args.max_load, args.wait))
        for i, (name, (ranks, job, jargs, _)) in enumerate(configs.items()):
            order = ["static", "dynamic"] if (rep + i) % 2 == 0 else ["dynamic", "static"]
            for kind in order:
                r = run(ranks, job, [*jargs, "--schedule", kind], tmp / "o.h5")
                results[name][kind].append(r)
                print(f"  round {rep + 1} {name} {kind}: {r['elapsed_s']:.3f} s, shards {r['rank_shards']}, "
                      f"steals {r['rank_steals']} (load {r['load']:.2f})", file=sys.stderr, flush=True)
    load_after = loadavg()

    summary = {name: summarise(name, results[name], configs[name][3]) for name in configs}
    het = [summary[f"slow_x4_sleep_{n}ranks"] for n in (2, 3)]
    hom = [summary[f"homogeneous_sleep_{n}ranks"] for n in (2, 3)] + [summary["homogeneous_stats_2ranks"]]
    targets = {
        "dynamic_within_15pct_of_ideal": all(h["dynamic_over_ideal"] <= 1.15 for h in het),
        "dynamic_at_least_1.5x_faster_than_static": all(h["speedup"] >= 1.5 for h in het),
        # what a schedule can change is the map phase (window, claims, steals, the end barrier)
        "homogeneous_overhead_at_most_2pct": all(h["dynamic_map_overhead"] <= 0.02 for h in hom),
        "homogeneous_elapsed_overhead_at_most_2pct": all(h["dynamic_overhead"] <= 0.02 for h in hom),
    }
    from mpi4py import MPI
    doc = {
        "benchmark": "bench_dynamic",
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                 "mpi": MPI.Get_library_version().splitlines()[0].strip(), "python": platform.python_version()},
        "load_before": load_before, "load_after": load_after, "round_loads": round_loads,
        "settings": {"repeats": args.repeats, "shards": args.shards, "work_s": args.work, "factor": FACTOR,
                     "stats_rows": args.stats_rows, "max_load": args.max_load},
        "targets": targets,
        "summary": summary,
        "configs": {name: {"ranks": c[0], "job": str(Path(c[1]).relative_to(ROOT)), "args": c[2]}
                    for name, c in configs.items()},
        "runs": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(targets), file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
