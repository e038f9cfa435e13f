"""Dynamic vs static schedule: a 4x slower rank, and the cost of dynamic when nothing is slow.

One run measures everything with the contenders interleaved (static, dynamic, ... with the order
rotated each round): the machine is shared and its speed drifts, so only ratios taken within one
run mean anything. It records the load average before each round; with ``--wait-quiet`` it first
waits while the 1-minute load average is above ``--max-load`` (others running heavy things).

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
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from hpcdist.bench import data as bench_data
from hpcdist.bench import launch, machine, quiet

ROOT = Path(__file__).resolve().parents[1]
UNEVEN = ROOT / "tests" / "jobs" / "uneven_sum.py"
STATS = ROOT / "jobs" / "stats.py"
FACTOR = 4.0


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(ranks: int, job: Path, args: list[str], out: Path) -> dict:
    """One ``mpiexec -n ranks hpcdist run``; its output attributes plus the launcher's wall time."""
    got = launch.run_hpcdist(ranks, str(job), args, str(out))
    a, wall = got.attrs, got.wall_s
    busy = [float(x) for x in a["rank_busy_s"]]
    idle = [float(x) for x in a["rank_idle_s"]]
    shards = [int(x) for x in a["rank_shards"]]
    speed = sum(n / b for n, b in zip(shards, busy) if b > 0)
    return {"schedule": str(a["schedule"]), "elapsed_s": float(a["elapsed_s"]), "wall_s": wall,
            "map_s": max(b + i for b, i in zip(busy, idle)),
            "measured_ideal_s": (sum(shards) / speed) if speed else None,
            "rank_shards": shards, "rank_busy_s": busy, "rank_idle_s": idle,
            "rank_claims": [int(x) for x in a["rank_claims"]], "rank_steals": [int(x) for x in a["rank_steals"]],
            "load": quiet.loadavg()[0]}


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
    say(f"{name}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in out.items()))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shards", type=int, default=240)
    ap.add_argument("--work", type=float, default=0.02, help="seconds per shard on a normal rank")
    ap.add_argument("--stats-rows", type=int, default=1 << 26, help="rows x 4 float64 for jobs/stats.py")
    ap.add_argument("--data", default=str(ROOT / "bench-data" / "big.h5"), help="stats input (HDF5, /x)")
    ap.add_argument("--max-load", type=float, default=1.0, help="the 1-minute load average of a quiet machine")
    ap.add_argument("--wait-quiet", action="store_true", help="before each round, wait (at most --wait s) for it")
    ap.add_argument("--wait", type=float, default=900, help="longest wait for a quiet machine, seconds")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dynamic.json"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_dynamic_"))
    data = Path(args.data)
    bench_data.ensure_h5(f"{data}:/x", args.stats_rows, 4, say)
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

    say("warming numba's caches ...")
    run(1, STATS, ["--input", f"{data}:/x", "--param", "lo=-5", "--param", "hi=5"], tmp / "o.h5")
    run(1, UNEVEN, [*base, "--param", "work=0"], tmp / "o.h5")
    load_before = quiet.start_load(args.max_load, args.wait_quiet, args.wait, say)
    say(f"load average {load_before}")
    results: dict[str, dict[str, list[dict]]] = {k: {"static": [], "dynamic": []} for k in configs}
    round_loads = []
    for rep in range(args.repeats):
        round_loads.append(quiet.start_load(args.max_load, args.wait_quiet, args.wait, say))
        for i, (name, (ranks, job, jargs, _)) in enumerate(configs.items()):
            order = ["static", "dynamic"] if (rep + i) % 2 == 0 else ["dynamic", "static"]
            for kind in order:
                r = run(ranks, job, [*jargs, "--schedule", kind], tmp / "o.h5")
                results[name][kind].append(r)
                say(f"  round {rep + 1} {name} {kind}: {r['elapsed_s']:.3f} s, shards {r['rank_shards']}, "
                    f"steals {r['rank_steals']} (load {r['load']:.2f})")
    load_after = quiet.loadavg()

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
    versions = machine.versions()
    doc = {
        "benchmark": "bench_dynamic",
        "date_utc": machine.now_utc(),
        "host": {"cpus": machine.describe()["cores_detected"], "platform": machine.describe()["platform"],
                 "mpi": versions.get("mpi_library"), "python": versions["python"]},
        "load_before": load_before, "load_after": load_after, "round_loads": round_loads,
        "settings": {"repeats": args.repeats, "shards": args.shards, "work_s": args.work, "factor": FACTOR,
                     "stats_rows": args.stats_rows, "max_load": args.max_load, "wait_quiet": args.wait_quiet},
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
