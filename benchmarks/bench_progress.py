"""What the progress line costs: the same run with ``--no-progress`` and with ``--progress=0.2``, interleaved.

    python benchmarks/bench_progress.py --data bench-data/big.h5:/x --ranks 1,2 --rounds 7 \\
        --out benchmarks/results/progress.json

``--progress=0.2`` is five times the terminal's rate: every 0.2 s rank 0 runs a counts round up the
control tree (each rank adds its count when it next polls; rank 0 receives ceil(log2 P) messages,
see hpcdist/control.py) and formats and writes a line; without a checkpoint that is all the
progress line adds. Each round runs, for every rank
count, off then on, then on then off (ABBA), so drift in the machine cancels. Both settings must
give the same result datasets, bit for bit, before any time counts. Reported per setting: the
launcher's wall time and the run's own ``elapsed_s`` (median, spread); the JSON keeps every run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

from hpcdist.bench import launch, machine, metrics, quiet

SETTINGS = {"off": ["--no-progress"], "on": ["--progress=0.2"]}


def one(job: str, spec: str, ranks: int, setting: str, extra: list[str], out: str) -> launch.HpcdistRun:
    return launch.run_hpcdist(ranks, job, ["--input", spec, *extra, *SETTINGS[setting]], out)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.asarray(a[k]).tobytes() == np.asarray(b[k]).tobytes() for k in a)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="input spec, e.g. bench-data/big.h5:/x or synthetic:rows=...")
    ap.add_argument("--job", default="jobs/stats.py", help="job file (default jobs/stats.py)")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--shard-rows", type=int, default=None, help="rows per shard (more shards: more updates)")
    ap.add_argument("--out", required=True, help="JSON record")
    args = ap.parse_args(argv)
    ranks = [int(r) for r in args.ranks.split(",")]
    extra = ["--shard-rows", str(args.shard_rows)] if args.shard_rows else []
    tmp = tempfile.mkdtemp(prefix="bench-progress-")
    out = os.path.join(tmp, "out.h5")
    runs = {s: {p: [] for p in ranks} for s in SETTINGS}
    for p in ranks:            # warm-up: numba's cache, the file in the page cache; results must agree
        ref = {s: one(args.job, args.data, p, s, extra, out).results for s in SETTINGS}
        if not same(ref["off"], ref["on"]):
            raise SystemExit(f"--progress changed the results at {p} rank(s): nothing timed")
    for r in range(args.rounds):
        for p in ranks:
            for s in (("off", "on") if r % 2 == 0 else ("on", "off")):
                before_cpu = quiet.busy_cpu_s()
                got = one(args.job, args.data, p, s, extra, out)
                runs[s][p].append({"wall_s": got.wall_s, "elapsed_s": float(got.attrs["elapsed_s"]),
                                   "machine_busy_cpu_s": quiet.busy_cpu_s() - before_cpu})
                print(f"round {r + 1}: progress {s:3s} {p} rank(s): wall {got.wall_s:.3f} s, "
                      f"elapsed {float(got.attrs['elapsed_s']):.3f} s", file=sys.stderr, flush=True)
    os.rmdir(tmp)
    summary = {str(p): {key: {"off": metrics.summary([x[key] for x in runs["off"][p]]),
                              "on": metrics.summary([x[key] for x in runs["on"][p]]),
                              "on_over_off_median": float(np.median([x[key] for x in runs["on"][p]])
                                                          / np.median([x[key] for x in runs["off"][p]]))}
                        for key in ("wall_s", "elapsed_s")} for p in ranks}
    record = {"data": args.data, "job": args.job, "rounds": args.rounds, "settings": SETTINGS,
              "date": machine.now_utc(), "git": machine.git_facts(), "machine": machine.describe(),
              "versions": machine.versions(), "loadavg_end": quiet.loadavg(), "summary": summary, "runs": runs}
    with open(args.out, "w") as fh:
        json.dump(record, fh, indent=1, default=str)
    for p, keys in summary.items():
        print(f"{p} rank(s): " + "; ".join(f"{k} median off {v['off']['median']:.3f} s, on {v['on']['median']:.3f} s "
                                           f"(x{v['on_over_off_median']:.3f})" for k, v in keys.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
