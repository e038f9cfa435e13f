"""A refactor costs nothing: hpcdist at an earlier commit against this checkout, on the same data, interleaved.

    python benchmarks/bench_before_after.py --before 331f79a --data bench-data/big.h5:/x --ranks 1,2 \\
        --rounds 5 --out benchmarks/results/before_after.json

The earlier commit is checked out with ``git worktree`` beside this one and run by the same Python
(its package first on ``PYTHONPATH``), so only hpcdist's own code differs. Each round runs, for every
rank count, before then after, then after then before (ABBA), so drift in the machine cancels.
Both must give the same result datasets, bit for bit, before any time counts. Reported per side:
the whole process's wall time and the run's own ``elapsed_s``; the JSON keeps every run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from hpcdist.bench import launch, machine, metrics, quiet


def worktree(rev: str, where: str) -> str:
    """An earlier commit of this repository, checked out at ``where`` (removed by the caller)."""
    root = machine.checkout_root()
    if root is None:
        raise SystemExit("bench_before_after: run it from a git checkout of hpcdist")
    subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", "--force", where, rev],
                   check=True, capture_output=True)
    return where


def one(tree: str, job: str, spec: str, ranks: int, out: str) -> tuple[float, float, dict]:
    """(wall s, elapsed_s, results) of ``hpcdist run`` from ``tree`` on ``spec``."""
    env = launch.launch_env({"PYTHONPATH": tree})
    cmd = launch.mpi_cmd(ranks, [sys.executable, "-m", "hpcdist", "run", os.path.join(tree, "jobs", job),
                                 "--input", spec, "--output", out])
    _, wall = launch.launch(cmd, env=env)
    with h5py.File(out, "r") as f:
        results = {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}
        elapsed = float(f.attrs["elapsed_s"])
    os.unlink(out)
    return wall, elapsed, results


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.asarray(a[k]).tobytes() == np.asarray(b[k]).tobytes() for k in a)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="the earlier commit (e.g. the one before a refactor)")
    ap.add_argument("--data", required=True, help="input spec, e.g. bench-data/big.h5:/x")
    ap.add_argument("--job", default="stats.py", help="job file name in jobs/ (default stats.py)")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", required=True, help="JSON record")
    args = ap.parse_args(argv)
    ranks = [int(r) for r in args.ranks.split(",")]
    here = str(machine.checkout_root())
    tmp = tempfile.mkdtemp(prefix="before-after-")
    before_tree = worktree(args.before, os.path.join(tmp, "before"))
    trees = {"before": before_tree, "after": here}
    runs = {side: {p: [] for p in ranks} for side in trees}
    try:
        for p in ranks:      # warm-up: numba caches of both trees, the file in the page cache
            ref = {side: one(tree, args.job, args.data, p, os.path.join(tmp, f"{side}.h5"))[2]
                   for side, tree in trees.items()}
            if not same(ref["before"], ref["after"]):
                raise SystemExit(f"before and after disagree at {p} rank(s): nothing timed")
        for r in range(args.rounds):
            for p in ranks:
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for side in order:
                    before_cpu = quiet.busy_cpu_s()
                    wall, elapsed, _ = one(trees[side], args.job, args.data, p, os.path.join(tmp, f"{side}.h5"))
                    runs[side][p].append({"wall_s": wall, "elapsed_s": elapsed,
                                          "machine_busy_cpu_s": quiet.busy_cpu_s() - before_cpu})
                    print(f"round {r + 1}: {side:6s} {p} rank(s): wall {wall:.3f} s, elapsed {elapsed:.3f} s",
                          file=sys.stderr, flush=True)
    finally:
        subprocess.run(["git", "-C", here, "worktree", "remove", "--force", before_tree], capture_output=True)
    summary = {}
    for p in ranks:
        b, a = runs["before"][p], runs["after"][p]
        summary[str(p)] = {
            key: {"before": metrics.summary([x[key] for x in b]), "after": metrics.summary([x[key] for x in a]),
                  "after_over_before_median": float(np.median([x[key] for x in a]) / np.median([x[key] for x in b]))}
            for key in ("wall_s", "elapsed_s")}
    record = {"before": args.before, "after": machine.git_facts(), "data": args.data, "job": args.job,
              "rounds": args.rounds, "date": machine.now_utc(), "machine": machine.describe(),
              "versions": machine.versions(), "loadavg_end": quiet.loadavg(), "summary": summary, "runs": runs}
    with open(args.out, "w") as fh:
        json.dump(record, fh, indent=1, default=str)
    for p, keys in summary.items():
        print(f"{p} rank(s): " + "; ".join(f"{k} median before {v['before']['median']:.3f} s, after "
                                           f"{v['after']['median']:.3f} s (x{v['after_over_before_median']:.3f})"
                                           for k, v in keys.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
