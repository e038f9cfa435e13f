"""Would reading the next shard while computing this one pay? (a question for hpcdist/runtime.py)

One process, the runtime's own pieces: HDF5Source.read into a shard buffer, then the stats
kernel, over every shard of the dataset; once in order (what the runtime does today) and once with
a reader thread filling the other of two buffers (pread and the numba kernel both release the GIL).
The two are interleaved, A B A B, and the answers must agree bit for bit.

    python benchmarks/bench_prefetch.py [bench-data/big.h5:/x] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", nargs="?", default=str(ROOT / "bench-data" / "big.h5") + ":/x")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    from hpcdist.shards import plan_shards
    from hpcdist.sources import open_source

    from hpcdist.kernels import column_stats as kernel
    src = open_source(args.input)
    plan = plan_shards(src.rows, src.row_bytes, src.chunk_rows)
    cols = int(np.prod(src.row_shape)) if src.row_shape else 1
    lo, hi = np.full(cols, -5.0), np.full(cols, 5.0)
    bufs = [src.empty(plan.shard_rows), src.empty(plan.shard_rows)]
    kernel(bufs[0][:16].reshape(16, -1), lo, hi, 64)

    def in_order():
        hist = 0
        for s in range(plan.shards):
            a, b = plan.bounds(s)
            x = src.read(a, b, bufs[0])
            hist = hist + kernel(x.reshape(len(x), -1), lo, hi, 64)[7]
        return hist

    def prefetched():
        full: queue.Queue = queue.Queue(maxsize=1)
        free: queue.Queue = queue.Queue()
        free.put(1)

        def reader():
            i = 0
            for s in range(plan.shards):
                a, b = plan.bounds(s)
                full.put(src.read(a, b, bufs[i]))
                i = free.get()

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        hist, i = 0, 0
        for _ in range(plan.shards):
            x = full.get()
            hist = hist + kernel(x.reshape(len(x), -1), lo, hi, 64)[7]
            free.put(i)          # this buffer may be refilled now
            i = 1 - i
        t.join()
        return hist

    assert np.array_equal(in_order(), prefetched())
    times = {"in_order": [], "prefetched": []}
    for _ in range(args.repeats):
        for name, fn in (("in_order", in_order), ("prefetched", prefetched)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    out = {name: {"median_s": statistics.median(v), "min_s": min(v), "GBps_median": src.nbytes / statistics.median(v) / 1e9}
           for name, v in times.items()}
    out["speedup_median"] = out["in_order"]["median_s"] / out["prefetched"]["median_s"]
    out["round_ratios"] = [a / b for a, b in zip(times["in_order"], times["prefetched"])]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
