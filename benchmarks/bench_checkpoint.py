"""Checkpoint benchmark: what checkpointing costs, how fast a signal becomes a checkpoint, how big.

One run, contenders interleaved (this machine's speed drifts; only same-run ratios mean anything):

(a) overhead: the stats job at 2 ranks with no checkpoint, with ``--checkpoint`` at the default
    interval (60 s), and with an aggressive 0.2 s interval (a write every fraction of a second);
(b) signal to checkpoint: SIGUSR1 to rank 1 mid-run; the time until the checkpoint is on disk and
    every rank has exited with 75;
(c) size: checkpoint bytes and tree nodes against the shard count, taken from runs stopped half way;
(d) writes against saved tree nodes (issue 14): rank 0's write path (``CheckpointWriter.snapshot``) at
    8, 80, 800 and 8,000 nodes, of 1-value nodes (the per-node overhead) and of real stats-job nodes
    (4 columns, 64 bins: the bytes grow with the nodes), median of ``--repeats`` writes, CPU time
    (``time.process_time``) beside wall time, split into: nodes -> columns (the Python over nodes,
    then one numpy copy per field), HDF5 image (datasets, fletcher32), SHA-256 trailer, ``os.write``
    (+ renames) and ``fsync``; and reading the file back (``store.read``: 10,000 nodes need no loop).

    python benchmarks/bench_checkpoint.py                 # ~2 min; writes benchmarks/results/checkpoint.json
    python benchmarks/bench_checkpoint.py --parts writes  # (d) only, no input data needed; ~10 s
    python benchmarks/bench_checkpoint.py --parts writes --quick   # checks the script: tiny, writes no file
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from hpcdist import atomic
from hpcdist.bench import launch, machine, quiet
from hpcdist.checkpoint import CheckpointWriter, store
from hpcdist.checkpoint import node_table
from hpcdist.timings import RankProgress

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


# ---- (d) writes against saved tree nodes -----------------------------------------------------

COLS, BINS = 4, 64
SPLIT = ("collect", "concatenate", "image", "sha256", "write", "fsync")


def stats_nodes(n: int, rng: np.random.Generator) -> list:
    """What the stats job's rank 0 holds: a dict of 8 arrays per node (4 columns, a 4 x 64 histogram)."""
    return [(0, i, {"count": rng.integers(0, 9, COLS), "nan_count": rng.integers(0, 9, COLS),
                    "sum": rng.random(COLS), "mean": rng.random(COLS), "m2": rng.random(COLS),
                    "min": rng.random(COLS), "max": rng.random(COLS), "hist": rng.integers(0, 99, (COLS, BINS))})
            for i in range(n)]


def one_value_nodes(n: int, rng: np.random.Generator) -> list:
    """The smallest node: one 0-d float64 (what is left is the cost per node, not per byte)."""
    return [(0, i, np.asarray(rng.random())) for i in range(n)]


def timed(fn: Callable[[], object], into: dict[str, list[float]], name: str) -> object:
    c, w = time.process_time(), time.perf_counter()
    out = fn()
    into.setdefault(name + "_cpu", []).append(time.process_time() - c)
    into.setdefault(name + "_wall", []).append(time.perf_counter() - w)
    return out


def split_once(ckpt: store.Checkpoint, path: str, got: dict[str, list[float]]) -> None:
    """One write of ``ckpt`` by its parts (the same calls ``store.save`` makes), each part timed."""
    partials = [n[2] for n in ckpt.nodes]
    fields = timed(lambda: (np.asarray([n[0] for n in ckpt.nodes], dtype=np.int64),
                            np.asarray([n[1] for n in ckpt.nodes], dtype=np.int64),
                            node_table.collect(partials)), got, "collect")
    levels, indices, named = fields
    columns = timed(lambda: [node_table.column(*f) for f in named], got, "concatenate")
    tab = node_table.NodeTable(levels, indices, columns)
    image = timed(lambda: store.hdf5_image(ckpt, tab), got, "image")
    tail = timed(lambda: store.trailer(image), got, "sha256")
    fsyncs: dict[str, list[float]] = {}
    real_fsync = os.fsync

    def counted_fsync(fd: int) -> None:          # this process only, to split fsync from os.write
        timed(lambda: real_fsync(fd), fsyncs, "f")
    os.fsync = counted_fsync
    try:
        timed(lambda: atomic.write_bytes(path, [image, tail], previous=store.previous_path(path)), got, "write")
    finally:
        os.fsync = real_fsync
    for unit in ("cpu", "wall"):
        spent = sum(fsyncs.get(f"f_{unit}", []))
        got.setdefault(f"fsync_{unit}", []).append(spent)
        got[f"write_{unit}"][-1] -= spent


def node_writes(counts: list[int], repeats: int, tmp: str) -> list[dict]:
    """(d): rank 0's snapshot write at each node count and kind, whole and split; then a read back."""
    rows = []
    for kind, make in (("1-value", one_value_nodes), ("stats", stats_nodes)):
        for n in counts:
            nodes = make(n, np.random.default_rng(0))
            path = os.path.join(tmp, f"{kind}-{n}.ckpt.h5")
            fp = {"job": "stats", "params": {}, "input": {}, "shards": n, "shard_rows": 1, "job_sha256": "",
                  "hpcdist_version": ""}
            writer = CheckpointWriter(path, fp, ranks=n)
            progress = RankProgress(shards=[1] * n, busy_s=[0.0] * n)
            got: dict[str, list[float]] = {}
            writer.snapshot(nodes, 0, progress, None)          # warm: imports, first file
            for _ in range(repeats):
                timed(lambda: writer.snapshot(nodes, 0, progress, None), got, "snapshot")
                ckpt = store.Checkpoint(fingerprint=fp, pass_index=0, nodes=nodes, ranks=n,
                                        rank_shards=progress.shards, rank_busy_s=progress.busy_s)
                split_once(ckpt, path, got)
                back = timed(lambda: store.read(path), got, "read")
            assert len(back.nodes) == n
            med = {k: statistics.median(v) for k, v in got.items()}
            size = os.path.getsize(path)
            rows.append({"kind": kind, "nodes": n, "bytes": size, **{f"{k}_ms": v * 1e3 for k, v in med.items()},
                         "mb_per_cpu_s": size / 1e6 / med["snapshot_cpu"]})
            print(f"writes: {kind} {n} nodes: {med['snapshot_cpu'] * 1e3:.1f} ms CPU, "
                  f"{med['snapshot_wall'] * 1e3:.1f} ms wall, {size:,} bytes", file=sys.stderr)
    return rows


def writes_table(rows: list[dict]) -> str:
    lines = ["| nodes | kind | bytes | write CPU ms | wall ms | MB per CPU s | " +
             " | ".join(f"{p} CPU ms" for p in SPLIT) + " | fsync wall ms | read CPU ms |",
             "|---" * (8 + len(SPLIT)) + "|"]
    for r in rows:
        lines.append(f"| {r['nodes']:,} | {r['kind']} | {r['bytes']:,} | {r['snapshot_cpu_ms']:.2f} | "
                     f"{r['snapshot_wall_ms']:.2f} | {r['mb_per_cpu_s']:.0f} | " +
                     " | ".join(f"{r[p + '_cpu_ms']:.2f}" for p in SPLIT) +
                     f" | {r['fsync_wall_ms']:.2f} | {r['read_cpu_ms']:.2f} |")
    for kind in sorted({r["kind"] for r in rows}):
        got = {r["nodes"]: r["snapshot_cpu_ms"] for r in rows if r["kind"] == kind}
        if 8 in got and 8000 in got:
            lines.append(f"\n{kind}: 8,000 nodes / 8 nodes = {got[8000] / got[8]:.2f}x CPU (target <= 3x)")
    return "\n".join(lines)


# ---- (a)-(c): runs of the stats job ---------------------------------------------------------

def run_parts(args: argparse.Namespace, work: Path, say: Callable[[str], None]) -> dict:
    """(a) overhead of checkpointing, (b) signal -> exit 75, (c) size of runs stopped half way."""
    if not Path(args.data.rsplit(":", 1)[0]).exists():
        raise SystemExit(f"{args.data}: missing; run benchmarks/bench_core.py first (it makes the data)")
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
        say(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()))
    best = {k: min(v) for k, v in times.items()}
    sizes = []
    for shard_rows in (262144, 32768, 4096):       # slower shards via a small shard size
        ckpt = work / f"s{shard_rows}.ckpt.h5"
        stop_args = base + ["--shard-rows", str(shard_rows), "--checkpoint", str(ckpt), "--checkpoint-every", "600"]
        one = stop_mid_run(2, stop_args, ckpt, after_s=0.6 + best["none"] / 2)
        one["shard_rows"] = shard_rows
        sizes.append(one)
        say(f"shard_rows {shard_rows}: {one}")
    print("| checkpointing | best wall (2 ranks) | overhead |\n|---|---|---|")
    for k in contenders:
        print(f"| {k} | {best[k]:.3f} s | {best[k] / best['none'] - 1:+.1%} |")
    print("\n| shard rows | shards | done at stop | nodes | checkpoint bytes | signal -> exit 75 |\n"
          "|---|---|---|---|---|---|")
    for s in sizes:
        print(f"| {s['shard_rows']} | {s['shards']} | {s['shards_done']} | {s['nodes']} | {s['bytes']:,} | "
              f"{s['signal_to_exit_s']:.2f} s |")
    return {"input": args.data, "ranks": 2, "repeats": args.repeats, "wall_s": times, "best_wall_s": best,
            "overhead_default_interval": best["default_60s"] / best["none"] - 1,
            "overhead_every_0.2s": best["every_0.2s"] / best["none"] - 1,
            "stop_runs": sizes, "signal_to_exit_s_max": max(s["signal_to_exit_s"] for s in sizes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "bench-data" / "big.h5") + ":/x",
                    help="input (default: the core benchmark's 2 GiB dataset; made by bench_core.py)")
    ap.add_argument("--parts", default="runs,writes", help="runs ((a)-(c), needs --data), writes ((d)), or both")
    ap.add_argument("--repeats", type=int, default=None, help="runs: 3 rounds; writes: median of 7")
    ap.add_argument("--quick", action="store_true", help="writes at 8 and 80 nodes once: checks the script only")
    ap.add_argument("--wait-quiet", action="store_true", help="wait (at most 600 s) for a load average <= 1 first")
    ap.add_argument("--dir", default=str(ROOT / "bench-data"),
                    help="writes: where the checkpoint files go (the file system a run's checkpoint would use)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "checkpoint.json"))
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    if not parts <= {"runs", "writes"}:
        raise SystemExit(f"--parts: runs, writes or runs,writes, got {args.parts!r}")
    say = lambda text: print(text, file=sys.stderr)        # noqa: E731
    load_before = quiet.start_load(1.0, args.wait_quiet, 600, say)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() and parts != {"runs", "writes"} else {}
    result.update({"benchmark": "checkpoint", "date": machine.now_utc(),
                   "git_commit": machine.git_facts()["git_commit"], "load_before": load_before})
    if "runs" in parts:
        args.repeats = args.repeats or 3
        work = Path(tempfile.mkdtemp(prefix="bench-ckpt-", dir=ROOT / "bench-data"))
        try:
            result.update(run_parts(args, work, say))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if "writes" in parts:
        counts, repeats = ([8, 80], 1) if args.quick else ([8, 80, 800, 8000], args.repeats or 7)
        Path(args.dir).mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="bench-ckpt-writes-", dir=args.dir)
        try:
            rows = node_writes(counts, repeats, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        result["writes"] = {"date": machine.now_utc(), "dir": args.dir, "repeats": repeats, "split": list(SPLIT),
                            "rows": rows}
        print(writes_table(rows))
    result["load_after"] = quiet.loadavg()
    if args.quick:
        return
    out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {args.out}")


if __name__ == "__main__":
    main()
