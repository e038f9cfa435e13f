"""jobs/stats.py, with each rank writing when its map calls start and end (benchmarks/bench_startup.py).

The first call of a process is the warm-up on a tiny shard (:mod:`hpcdist.warmup`); the second is
the first real shard. Times are ``time.time()`` (one clock for every process on the machine) and
the process's CPU seconds (``time.process_time()``), appended to ``$BENCH_STAMPS/rank-<pid>.txt`` as
``start end cpu_start cpu_end`` lines. Nothing else changes.
"""

import importlib.util
import os
import time
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_stats", Path(__file__).resolve().parents[2] / "jobs" / "stats.py")
_stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_stats)

PARAMS, INPUT_NDIM = _stats.PARAMS, _stats.INPUT_NDIM
default_input, check, init, update, combine, finalize = (
    _stats.default_input, _stats.check, _stats.init, _stats.update, _stats.combine, _stats.finalize)


def map(shard, ctx):
    t0, c0 = time.time(), time.process_time()
    out = _stats.map(shard, ctx)
    if "BENCH_STAMPS" in os.environ:        # not under `hpcdist compile`
        with open(os.path.join(os.environ["BENCH_STAMPS"], f"rank-{os.getpid()}.txt"), "a") as fh:
            fh.write(f"{t0!r} {time.time()!r} {c0!r} {time.process_time()!r}\n")
    return out
