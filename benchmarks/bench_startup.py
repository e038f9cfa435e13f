"""Start-up, small jobs and checkpoint writes (issue 14): what a run costs around its map phase.

    python benchmarks/bench_startup.py                     # the full set (~10 min on a quiet 2-core machine)
    python benchmarks/bench_startup.py --quick             # tiny sizes: checks the script, numbers mean nothing

(a) start-up: ``mpiexec -n P hpcdist run benchmarks/jobs/stamped_stats.py`` at P = 1, 2, 4, 8, 16, with a
    warm numba cache (filled by ``hpcdist compile`` first) and a cold one (an empty NUMBA_CACHE_DIR);
    per run: launch -> first shard (the slowest rank's first real shard starts), last shard -> exit
    (the last shard's end to mpiexec's return), ``compile_s`` (the output's, rank 0), and the CPU
    seconds of all processes divided by P (beyond 2 ranks the machine is oversubscribed: CPU
    seconds per rank tell contention from work);
(b) small jobs: the stats job at 64 MB, 256 MB, 1 GB and 2 GB at 1 and 2 ranks, interleaved, warm
    cache: ``elapsed_s`` (inside the run) and the whole process, and the speedup per size;
(c) checkpoint writes: :func:`hpcdist.checkpoint.store.save` of 8, 80, 800 and 8,000 stats-like
    tree nodes (4 columns, 64 bins), median of 5 writes each.

Writes benchmarks/results/startup.json and prints markdown tables. Targets (issue 14): warm
``compile_s`` at 8 ranks <= 2x the 1-rank figure; 256 MB speedup > 1.15 inside the run and > 1.0 for
the whole process; checkpoint write at 8,000 nodes <= 3x the 8-node write.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from hpcdist.bench import data as bench_data
from hpcdist.bench import launch, machine, quiet

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "benchmarks" / "jobs" / "stamped_stats.py"
PARAMS = ["--param", "lo=-5", "--param", "hi=5"]
COLS = 4


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def one_start(ranks: int, spec: str, cache: str, tmp: str) -> dict:
    """One stamped run: the phases around the map phase, from the ranks' own stamps."""
    stamps = tempfile.mkdtemp(dir=tmp, prefix="stamps-")
    out = os.path.join(tmp, "out.h5")
    env = launch.launch_env({"NUMBA_CACHE_DIR": cache, "BENCH_STAMPS": stamps})
    cmd = launch.mpi_cmd(ranks, [*launch.hpcdist_cmd(), "run", str(JOB), "--input", spec, *PARAMS, "--output", out])
    cpu0, t0 = children_cpu_s(), time.time()
    launch.launch(cmd, env)
    t_exit, cpu = time.time(), children_cpu_s() - cpu0
    firsts, lasts, warm_cpu = [], [], []
    for name in os.listdir(stamps):
        calls = [tuple(map(float, line.split())) for line in open(os.path.join(stamps, name))]
        if len(calls) > 1:                    # the first call is the warm-up on a tiny shard
            firsts.append(calls[1][0])
            lasts.append(max(call[1] for call in calls[1:]))
            warm_cpu.append(calls[0][3] - calls[0][2])      # CPU of loading (or compiling) the kernels
    with h5py.File(out, "r") as f:
        compile_s, elapsed_s = float(f.attrs["compile_s"]), float(f.attrs["elapsed_s"])
    os.unlink(out)
    shutil.rmtree(stamps)
    return {"ranks": ranks, "launch_to_first_shard_s": max(firsts) - t0, "last_shard_to_exit_s": t_exit - max(lasts),
            "compile_s": compile_s, "compile_cpu_s_per_rank": sum(warm_cpu) / len(warm_cpu),
            "elapsed_s": elapsed_s, "wall_s": t_exit - t0, "cpu_s_per_rank": cpu / ranks}


def startup(ranks_list: list[int], spec: str, repeats: int, tmp: str) -> list[dict]:
    warm = os.path.join(tmp, "warm-cache")
    launch.launch([*launch.hpcdist_cmd(), "compile", str(JOB), "--input", spec, *PARAMS],
                  launch.launch_env({"NUMBA_CACHE_DIR": warm}))
    rows = []
    for rep in range(repeats):
        for ranks in ranks_list:
            for kind in ("warm", "cold"):
                cache = warm if kind == "warm" else tempfile.mkdtemp(dir=tmp, prefix="cold-cache-")
                got = {"cache": kind, "repeat": rep, **one_start(ranks, spec, cache, tmp)}
                if kind == "cold":
                    shutil.rmtree(cache)
                say(f"start-up P={ranks} {kind}: first shard {got['launch_to_first_shard_s']:.3f} s, "
                    f"exit {got['last_shard_to_exit_s']:.3f} s, compile {got['compile_s']:.3f} s "
                    f"({got['compile_cpu_s_per_rank']:.3f} s CPU per rank)")
                rows.append(got)
    return rows


def small_jobs(sizes_mb: list[int], repeats: int, data_dir: str, tmp: str) -> list[dict]:
    rows = []
    specs = {}
    for mb in sizes_mb:
        n = mb * (1 << 20) // (8 * COLS)
        specs[mb] = bench_data.input_spec("h5", n, COLS, data_dir)
        bench_data.ensure_h5(specs[mb], n, COLS, say)
    for rep in range(repeats):
        order = [1, 2] if rep % 2 == 0 else [2, 1]          # interleaved, rotating
        for mb in sizes_mb:
            for ranks in order:
                out = os.path.join(tmp, "small.h5")
                cmd = [*launch.hpcdist_cmd(), "run", str(ROOT / "jobs" / "stats.py"), "--input", specs[mb], *PARAMS,
                       "--output", out]
                cpu0 = children_cpu_s()
                _, wall = launch.launch(launch.mpi_cmd(ranks, cmd))
                cpu = children_cpu_s() - cpu0
                with h5py.File(out, "r") as f:
                    attrs = {k: float(f.attrs[k]) for k in ("elapsed_s", "compile_s")}
                os.unlink(out)
                rows.append({"mb": mb, "ranks": ranks, "repeat": rep, **attrs, "wall_s": wall,
                             "cpu_s_per_rank": cpu / ranks})
        say(f"small jobs: round {rep + 1}/{repeats} done")
    return rows


def checkpoint_writes(counts: list[int], repeats: int, tmp: str) -> list[dict]:
    from hpcdist.checkpoint import Checkpoint, save

    rng = np.random.default_rng(0)
    rows = []
    for n in counts:
        nodes = [(0, i, {"count": rng.integers(0, 9, COLS), "nan_count": rng.integers(0, 9, COLS),
                         "sum": rng.random(COLS), "mean": rng.random(COLS), "m2": rng.random(COLS),
                         "min": rng.random(COLS), "max": rng.random(COLS),
                         "hist": rng.integers(0, 99, (COLS, 64))}) for i in range(n)]
        fp = {"job": "stats", "params": {}, "input": {}, "shards": n, "shard_rows": 1, "job_sha256": "",
              "hpcdist_version": ""}
        ckpt = Checkpoint(fingerprint=fp, pass_index=0, nodes=nodes, ranks=n, rank_shards=[1] * n,
                          rank_busy_s=[0.0] * n)
        path = os.path.join(tmp, "c.h5")
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            save(path, ckpt)
            times.append(time.perf_counter() - t)
        rows.append({"nodes": n, "write_s": statistics.median(times), "bytes": os.path.getsize(path)})
        say(f"checkpoint: {n} nodes: {rows[-1]['write_s'] * 1e3:.1f} ms")
    return rows


def tables(rec: dict) -> str:
    med = statistics.median
    lines = ["| P | cache | launch -> first shard s | last shard -> exit s | compile_s | compile CPU s per rank "
             "| CPU s per rank |", "|---|---|---|---|---|---|---|"]
    for ranks in sorted({r["ranks"] for r in rec["startup"]}):
        for kind in ("warm", "cold"):
            got = [r for r in rec["startup"] if r["ranks"] == ranks and r["cache"] == kind]
            lines.append(f"| {ranks} | {kind} | {med(r['launch_to_first_shard_s'] for r in got):.3f} | "
                         f"{med(r['last_shard_to_exit_s'] for r in got):.3f} | {med(r['compile_s'] for r in got):.3f} | "
                         f"{med(r['compile_cpu_s_per_rank'] for r in got):.3f} | {med(r['cpu_s_per_rank'] for r in got):.2f} |")
    lines += ["", "| size | elapsed_s 1 rank | 2 ranks | speedup | whole process 1 rank | 2 ranks | speedup "
              "| CPU s per rank 1 | 2 |", "|---|---|---|---|---|---|---|---|---|"]
    for mb in sorted({r["mb"] for r in rec["small"]}):
        one = [r for r in rec["small"] if r["mb"] == mb and r["ranks"] == 1]
        two = [r for r in rec["small"] if r["mb"] == mb and r["ranks"] == 2]
        e1, e2 = med(r["elapsed_s"] for r in one), med(r["elapsed_s"] for r in two)
        w1, w2 = med(r["wall_s"] for r in one), med(r["wall_s"] for r in two)
        c1, c2 = med(r["cpu_s_per_rank"] for r in one), med(r["cpu_s_per_rank"] for r in two)
        lines.append(f"| {mb} MB | {e1:.3f} | {e2:.3f} | {e1 / e2:.2f} | {w1:.3f} | {w2:.3f} | {w1 / w2:.2f} "
                     f"| {c1:.2f} | {c2:.2f} |")
    lines += ["", "| saved nodes | write ms | bytes |", "|---|---|---|"]
    lines += [f"| {r['nodes']:,} | {r['write_s'] * 1e3:.1f} | {r['bytes']:,} |" for r in rec["checkpoint"]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: checks the script only")
    ap.add_argument("--ranks", default="1,2,4,8,16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", default=str(ROOT / "bench-data"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "startup.json"))
    ap.add_argument("--wait-quiet", action="store_true", help="wait for a 1-minute load average below 1.0 first")
    args = ap.parse_args()
    ranks = [int(r) for r in args.ranks.split(",")]
    sizes, counts, repeats = [64, 256, 1024, 2048], [8, 80, 800, 8000], args.repeats
    if args.quick:
        ranks, sizes, counts, repeats = [1, 2], [1, 2], [8, 80], 1
    load = quiet.start_load(1.0, args.wait_quiet, 600, say)
    tmp = tempfile.mkdtemp(prefix="bench-startup-")
    try:
        start_rows = ((2 if args.quick else 64) << 20) // (8 * COLS)     # start-up on 64 MB: a few shards
        start_spec = bench_data.input_spec("h5", start_rows, COLS, args.data_dir)
        bench_data.ensure_h5(start_spec, start_rows, COLS, say)
        rec = {"benchmark": "startup", "date": machine.now_utc(), "machine": machine.describe(), "load_before": load,
               "quick": args.quick, "startup": startup(ranks, start_spec, repeats, tmp),
               "small": small_jobs(sizes, repeats, args.data_dir, tmp),
               "checkpoint": checkpoint_writes(counts, 5, tmp)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not args.quick:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rec, indent=1))
        say(f"wrote {args.out}")
    print(tables(rec))


if __name__ == "__main__":
    main()
