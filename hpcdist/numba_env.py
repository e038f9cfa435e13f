"""Numba settings every rank needs before a job imports numba.

- Threads: each rank would start one numba thread per core, oversubscribing the node under MPI, so
  each rank gets ``cores / ranks-on-this-node`` threads unless ``NUMBA_NUM_THREADS`` is set.
- Cache: ``cache=True`` kernels compile once per machine into one directory the ranks share
  (``NUMBA_CACHE_DIR``, default ``~/.cache/hpcdist/numba``): every rank loads it at once, and on a
  miss one process per cache directory compiles while the others wait to load its result
  (:mod:`hpcdist.warmup`; ``hpcdist compile JOB.py`` fills it ahead of a run).
"""

from __future__ import annotations

import os
import sys


def configure(ranks_on_node: int) -> None:
    if "numba" in sys.modules:
        return  # too late to change; the user's process already chose
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("NUMBA_NUM_THREADS", str(max(1, cores // max(1, ranks_on_node))))
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "hpcdist", "numba")
    os.environ.setdefault("NUMBA_CACHE_DIR", cache)
