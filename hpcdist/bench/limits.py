"""The machine's limits, measured in the same run as the job: memory bandwidth and MPI allreduce.

- STREAM-style memory bandwidth: every rank of the communicator streams its own arrays at the
  same time (so the per-rank figure is what a rank gets while its neighbours stream too, the
  condition the job runs under). Kernels: ``read`` (``a.sum()``: read-only, the reference for a
  reduction kernel such as the stats job's), ``copy`` (b = a), ``scale`` (b = 3 a), ``add``
  (c = a + b), counted as STREAM counts them (no write-allocate traffic). Best of ``reps``.
- allreduce: OSU-style latency (mean seconds per ``MPI_Allreduce`` of float64 sums, the slowest
  rank's) for message sizes from 8 B up, and the bandwidth of the largest message (``algbw`` =
  bytes / time, ``busbw`` = algbw x 2 (p - 1) / p, as nccl-tests report it).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

STREAM_KERNELS = ("read", "copy", "scale", "add")
ALLREDUCE_SIZES = (8, 64, 512, 4096, 32768, 262144, 2097152)


def stream(comm, mib: int = 256, reps: int = 5) -> dict[str, Any]:
    """Collective over ``comm``: per-rank and all-ranks GB/s of each STREAM kernel (best of reps)."""
    n = max(1, (mib << 20) // 8)
    a = np.full(n, 1.0)
    b = np.full(n, 2.0)
    c = np.zeros(n)
    ops = {
        "read": (lambda: a.sum(), 8 * n),
        "copy": (lambda: np.copyto(b, a), 16 * n),
        "scale": (lambda: np.multiply(a, 3.0, out=b), 16 * n),
        "add": (lambda: np.add(a, b, out=c), 24 * n),
    }
    size = comm.Get_size()
    out: dict[str, Any] = {"ranks": size, "bytes_per_array": 8 * n, "reps": reps}
    for name, (fn, nbytes) in ops.items():
        fn()                                  # first touch / warm
        best_rank, best_all = float("inf"), float("inf")
        for _ in range(reps):
            comm.Barrier()
            t0 = time.perf_counter()
            fn()
            mine = time.perf_counter() - t0
            slowest = comm.allreduce(mine, op=_max())
            best_rank, best_all = min(best_rank, mine), min(best_all, slowest)
        per_rank = comm.allgather(nbytes / best_rank / 1e9)
        out[name] = {"per_rank_GBps": float(np.median(per_rank)), "per_rank_GBps_min": float(min(per_rank)),
                     "all_ranks_GBps": nbytes * size / best_all / 1e9}
    del a, b, c
    return out


def allreduce(comm, sizes: tuple[int, ...] = ALLREDUCE_SIZES, budget_s: float = 0.05) -> dict[str, Any]:
    """Collective over ``comm``: allreduce latency per message size and the largest one's bandwidth."""
    from mpi4py import MPI

    p = comm.Get_size()
    lat: dict[str, float] = {}
    for nbytes in sizes:
        src = np.ones(max(1, nbytes // 8))
        dst = np.empty_like(src)
        for _ in range(3):
            comm.Allreduce(src, dst, op=MPI.SUM)
        # iterations: about budget_s per size, decided by rank 0 so every rank calls the same count
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allreduce(src, dst, op=MPI.SUM)
        one = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        iters = int(min(2000, max(5, budget_s / max(one, 1e-7))))
        iters = comm.bcast(iters, root=0)
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(iters):
            comm.Allreduce(src, dst, op=MPI.SUM)
        per_call = comm.allreduce((time.perf_counter() - t0) / iters, op=MPI.MAX)
        lat[str(src.nbytes)] = per_call
    biggest = str(max(int(k) for k in lat))
    algbw = int(biggest) / lat[biggest] / 1e9
    return {"ranks": p, "latency_s": lat, "latency_8B_us": lat[min(lat, key=int)] * 1e6,
            "bandwidth_bytes": int(biggest), "algbw_GBps": algbw,
            "busbw_GBps": algbw * (2 * (p - 1) / p) if p > 1 else None}


def _max():
    from mpi4py import MPI
    return MPI.MAX


def main(argv=None) -> int:
    """``mpiexec -n N python -m hpcdist.bench.limits [--mib M]``: rank 0 prints one JSON line
    {"memory_bandwidth": ..., "allreduce": ...} for the N ranks (used by ``bench compare``)."""
    import argparse
    import json

    from mpi4py import MPI

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--mib", type=int, default=256, help="MiB per array and rank (default 256)")
    args = ap.parse_args(argv)
    comm = MPI.COMM_WORLD
    out = {"memory_bandwidth": stream(comm, args.mib), "allreduce": allreduce(comm)}
    if comm.Get_rank() == 0:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
