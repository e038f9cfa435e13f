"""Checkpoint benchmark: what checkpointing costs, how fast a signal becomes a checkpoint, how big.

One run, contenders interleaved (this machine's speed drifts; only same-run ratios mean anything):

(a) overhead: the stats job at 2 ranks with no checkpoint, with ``--checkpoint`` at the default
    interval (60 s), and with an aggressive 0.2 s interval (a write every fraction of a second);
(b) signal to checkpoint: SIGUSR1 to rank 1 mid-run; the time until the checkpoint is on disk and
    every rank has exited with 75;
(c) size: checkpoint bytes and tree nodes against the shard count, taken from runs stopped half way.

    python benchmarks/bench_checkpoint.py            # ~2 min; writes benchmarks/results/checkpoint.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py

from hpcdist.bench import launch, machine, quiet

ROOT = Path(__file__).resolve().parents[1]
STATS = str(ROOT / "jobs" / "stats.py")
PARAMS = ["--param", "lo=-5", "--param", "hi=5"]


def run(ranks: int, args: list[str]) -> float:
    _, wall = launch.launch(launch.mpi_cmd(ranks, [*launch.hpcdist_cmd(), "run", *args]))
    return wall


def rank_pid(parent: subprocess.Popen, marker: str, rank: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            except OSError:
                continue
            if f"BENCH_MARKER={marker}".encode() in env and f"PMI_RANK={rank}".encode() in env:
                return int(pid)
        time.sleep(0.02)
    raise SystemExit("rank process not found")


def stop_mid_run(ranks: int, args: list[str], ckpt: Path, after_s: float) -> dict:
    """Start a run, SIGUSR1 rank 1 after ``after_s``; time until exit 75 with the checkpoint on disk."""
    marker = f"{os.getpid()}-{time.monotonic_ns()}"
    proc = subprocess.Popen(launch.mpi_cmd(ranks, [*launch.hpcdist_cmd(), "run", *args]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=launch.launch_env({"BENCH_MARKER": marker}))
    pid = rank_pid(proc, marker, 1)
    time.sleep(after_s)
    sent = time.perf_counter()
    os.kill(pid, signal.SIGUSR1)
    _, err = proc.communicate(timeout=120)
    done = time.perf_counter()
    if proc.returncode != 75:
        raise SystemExit(f"expected exit 75, got {proc.returncode}: {err[-2000:]}")
    with h5py.File(ckpt) as f:
        nodes, shards_done, shards = int(f["nodes"].attrs["count"]), int(f.attrs["shards_done"]), int(f.attrs["shards"])
    return {"signal_to_exit_s": done - sent, "bytes": ckpt.stat().st_size, "nodes": nodes, "shards_done": shards_done, "shards": shards}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "bench-data" / "big.h5") + ":/x",
                    help="input (default: the core benchmark's 2 GiB dataset; made by bench_core.py)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--wait-quiet", action="store_true", help="wait (at most 600 s) for a load average <= 1 first")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "checkpoint.json"))
    args = ap.parse_args()
    if not Path(args.data.rsplit(":", 1)[0]).exists():
        raise SystemExit(f"{args.data}: missing; run benchmarks/bench_core.py first (it makes the data)")
    load_before = quiet.start_load(1.0, args.wait_quiet, 600, lambda text: print(text, file=sys.stderr))
    work = Path(tempfile.mkdtemp(prefix="bench-ckpt-", dir=ROOT / "bench-data"))
    base = [STATS, "--input", args.data, *PARAMS]
    contenders = {
        "none": base,
        "default_60s": base + ["--checkpoint", str(work / "a.ckpt.h5")],
        "every_0.2s": base + ["--checkpoint", str(work / "b.ckpt.h5"), "--checkpoint-every", "0.2"],
    }
    times: dict[str, list[float]] = {k: [] for k in contenders}
    run(2, base)  # warm the page cache and numba's cache
    for r in range(args.repeats):
        order = list(contenders)[r % 3:] + list(contenders)[: r % 3]
        for name in order:
            times[name].append(run(2, contenders[name]))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), file=sys.stderr)
    best = {k: min(v) for k, v in times.items()}

    # (b) + (c): stop runs half way at several shard counts (slower shards via a small shard size)
    sizes = []
    full = best["none"]
    for shard_rows in (262144, 32768, 4096):
        ckpt = work / f"s{shard_rows}.ckpt.h5"
        stop_args = base + ["--shard-rows", str(shard_rows), "--checkpoint", str(ckpt), "--checkpoint-every", "600"]
        one = stop_mid_run(2, stop_args, ckpt, after_s=0.6 + full / 2)
        one["shard_rows"] = shard_rows
        sizes.append(one)
        print(f"shard_rows {shard_rows}: {one}", file=sys.stderr)

    result = {
        "benchmark": "checkpoint", "date": machine.now_utc(), "git_commit": machine.git_facts()["git_commit"], "input": args.data, "ranks": 2, "load_before": load_before,
        "load_after": quiet.loadavg(), "repeats": args.repeats,
        "wall_s": times, "best_wall_s": best,
        "overhead_default_interval": best["default_60s"] / best["none"] - 1,
        "overhead_every_0.2s": best["every_0.2s"] / best["none"] - 1,
        "stop_runs": sizes,
        "signal_to_exit_s_max": max(s["signal_to_exit_s"] for s in sizes),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("| checkpointing | best wall (2 ranks) | overhead |\n|---|---|---|")
    for k in contenders:
        print(f"| {k} | {best[k]:.3f} s | {best[k] / best['none'] - 1:+.1%} |")
    print("\n| shard rows | shards | done at stop | nodes | checkpoint bytes | signal -> exit 75 |\n|---|---|---|---|---|---|")
    for s in sizes:
        print(f"| {s['shard_rows']} | {s['shards']} | {s['shards_done']} | {s['nodes']} | {s['bytes']:,} | "
              f"{s['signal_to_exit_s']:.2f} s |")
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
