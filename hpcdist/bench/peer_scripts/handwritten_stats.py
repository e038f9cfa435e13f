"""The stats reduction written by hand with mpi4py + h5py + numba, as a baseline for hpcdist.

What a careful HPC programmer writes without a framework: every rank opens the file, takes its
contiguous block of rows (aligned to HDF5 chunks), reads it piece by piece with ``read_direct``
into one reused buffer, runs a fused numba kernel on each piece (per column: count, sum, min, max,
then M2 about the piece's mean and numpy's histogram bins, merged with Chan's update), and the
partials meet on rank 0 (integer counts and the histogram with MPI reduce, (count, mean, M2) in
rank order).

    mpiexec -n 2 python hpcdist/bench/peer_scripts/handwritten_stats.py bench-data/big.h5:/x --lo -5 --hi 5 \\
        [--bins 64] [--piece-rows 131072] [--kernel fused | --kernel hpcdist]
        [--json out.json]

``--kernel hpcdist`` runs the stats job's own kernel (``hpcdist.kernels.column_stats``) inside this hand-written loop
instead, which separates what the framework costs from what the kernel costs. Rank 0 prints one JSON line with the
results and timings (``elapsed_s`` from after imports to the reduced result, like hpcdist's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import h5py
import numpy as np
from mpi4py import MPI
from numba import njit

BLOCK = 1024   # rows per Chan block inside a piece


@njit(cache=True, nogil=True)
def _edges(lo, hi, bins):
    """np.linspace(lo, hi, bins + 1), operation for operation."""
    e = np.empty(bins + 1)
    step = (hi - lo) / bins
    for t in range(bins):
        e[t] = t * step + lo
    e[bins] = hi
    return e


@njit(cache=True, nogil=True)
def fused_stats(x, lo, hi, edges, count, nan_count, total, mean, m2, mn, mx, hist):
    """Accumulate the piece x (n, c) into the running per-column partials (in place).

    Per block of BLOCK rows (in cache) and column: pass 1 count, sum, min, max; pass 2 M2 about
    the block mean and numpy's histogram bin (estimate, then correct against the edges); then
    Chan's merge into the running partials. Four accumulators per sum hide the add latency."""
    n, c = x.shape
    bins = hist.shape[1]
    last = bins - 1
    for b0 in range(0, n, BLOCK):
        b1 = min(b0 + BLOCK, n)
        b4 = b0 + (b1 - b0) // 4 * 4
        for j in range(c):
            lo_j, hi_j, scale = lo[j], hi[j], bins / (hi[j] - lo[j])
            s0 = s1 = s2 = s3 = 0.0
            k = 0
            vmin, vmax = mn[j], mx[j]
            for i in range(b0, b1):
                v = x[i, j]
                if v == v:
                    r = i & 3
                    if r == 0:
                        s0 += v
                    elif r == 1:
                        s1 += v
                    elif r == 2:
                        s2 += v
                    else:
                        s3 += v
                    k += 1
                    if v < vmin:
                        vmin = v
                    if v > vmax:
                        vmax = v
            mn[j], mx[j] = vmin, vmax
            nan_count[j] += (b1 - b0) - k
            s = (s0 + s1) + (s2 + s3)
            total[j] += s
            if k == 0:
                continue
            bmean = s / k
            q0 = q1 = q2 = q3 = 0.0
            for i in range(b0, b4, 4):
                v0, v1, v2, v3 = x[i, j], x[i + 1, j], x[i + 2, j], x[i + 3, j]
                d0, d1, d2, d3 = v0 - bmean, v1 - bmean, v2 - bmean, v3 - bmean
                q0 += d0 * d0 if v0 == v0 else 0.0
                q1 += d1 * d1 if v1 == v1 else 0.0
                q2 += d2 * d2 if v2 == v2 else 0.0
                q3 += d3 * d3 if v3 == v3 else 0.0
            for i in range(b4, b1):
                v = x[i, j]
                if v == v:
                    d = v - bmean
                    q0 += d * d
            for i in range(b0, b1):
                v = x[i, j]
                if v >= lo_j and v <= hi_j:        # numpy.histogram's bin: estimate, correct
                    t = min(int((v - lo_j) * scale), last)
                    if v < edges[j, t]:
                        t -= 1
                    elif t != last and v >= edges[j, t + 1]:
                        t += 1
                    hist[j, t] += 1
            q = (q0 + q1) + (q2 + q3)
            na = count[j]
            nt = na + k
            share = k / nt
            delta = bmean - mean[j]
            mean[j] += delta * share
            m2[j] += q + delta * delta * (na * share)
            count[j] = nt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", help="FILE.h5:/dataset")
    ap.add_argument("--lo", type=float, required=True)
    ap.add_argument("--hi", type=float, required=True)
    ap.add_argument("--bins", type=int, default=64)
    ap.add_argument("--piece-rows", type=int, default=None, help="rows per read (default: ~4 MiB, chunk-aligned)")
    ap.add_argument("--kernel", choices=["fused", "hpcdist"], default="fused")
    ap.add_argument("--json", help="also write the JSON here (rank 0)")
    args = ap.parse_args(argv)

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    comm.Barrier()
    t_start = MPI.Wtime()

    path, _, dset = args.input.rpartition(":")
    f = h5py.File(path, "r")
    ds = f[dset]
    rows = ds.shape[0]
    cols = int(np.prod(ds.shape[1:])) if ds.ndim > 1 else 1
    chunk = ds.chunks[0] if ds.chunks else 1
    row_bytes = cols * ds.dtype.itemsize
    piece = args.piece_rows or max(chunk, ((4 << 20) // row_bytes) // chunk * chunk)
    # this rank's contiguous block of rows, on chunk boundaries
    nchunks = -(-rows // chunk)
    first = min(rows, rank * nchunks // size * chunk)
    last = min(rows, (rank + 1) * nchunks // size * chunk)

    lo = np.full(cols, args.lo)
    hi = np.full(cols, args.hi)
    bins = args.bins
    count = np.zeros(cols, np.int64)
    nan_count = np.zeros(cols, np.int64)
    total = np.zeros(cols)
    mean = np.zeros(cols)
    m2 = np.zeros(cols)
    mn = np.full(cols, np.inf)
    mx = np.full(cols, -np.inf)
    hist = np.zeros((cols, bins), np.int64)
    buf = np.empty((piece, cols), dtype=ds.dtype)

    if args.kernel == "hpcdist":
        from hpcdist.kernels import column_stats as kernel
    t0 = time.perf_counter()
    edges = np.stack([_edges(lo[j], hi[j], bins) for j in range(cols)])
    if args.kernel == "fused":       # compile / load from cache on a tiny piece, not timed below
        fused_stats(np.zeros((1, cols), ds.dtype), lo, hi, edges, *(np.zeros_like(a) for a in
                    (count, nan_count, total, mean, m2, mn, mx, hist)))
    else:
        kernel(np.zeros((1, cols), ds.dtype), lo, hi, bins)
    compile_s = time.perf_counter() - t0

    read_s = compute_s = 0.0
    for start in range(first, last, piece):
        stop = min(start + piece, last)
        m = stop - start
        t0 = time.perf_counter()
        ds.read_direct(buf, np.s_[start:stop], np.s_[0:m])
        t1 = time.perf_counter()
        x = buf[:m]
        if args.kernel == "fused":
            fused_stats(x, lo, hi, edges, count, nan_count, total, mean, m2, mn, mx, hist)
        else:   # the hpcdist kernel gives per-piece partials: merge them the same way
            c_, n_, s_, mu, q, a, b, h = kernel(x, lo, hi, bins)
            nt = count + c_
            share = np.divide(c_, nt, out=np.zeros(cols), where=nt > 0)
            delta = mu - mean
            m2 += q + delta * delta * (count * share)
            mean += delta * share
            count[:] = nt
            nan_count += n_
            total += s_
            np.fmin(mn, a, out=mn)
            np.fmax(mx, b, out=mx)
            hist += h
        compute_s += time.perf_counter() - t1
        read_s += t1 - t0
    f.close()

    # reduce: exact integers with MPI, (count, mean, M2) merged in rank order on rank 0
    t0 = time.perf_counter()
    g_count = np.zeros_like(count)
    g_nan = np.zeros_like(nan_count)
    g_hist = np.zeros_like(hist)
    g_min = np.zeros_like(mn)
    g_max = np.zeros_like(mx)
    comm.Reduce(count, g_count, op=MPI.SUM, root=0)
    comm.Reduce(nan_count, g_nan, op=MPI.SUM, root=0)
    comm.Reduce(hist, g_hist, op=MPI.SUM, root=0)
    comm.Reduce(mn, g_min, op=MPI.MIN, root=0)
    comm.Reduce(mx, g_max, op=MPI.MAX, root=0)
    parts = comm.gather((count, total, mean, m2), root=0)
    reduce_s = time.perf_counter() - t0
    timings = comm.gather((read_s, compute_s, compile_s), root=0)
    if rank == 0:
        n_all = np.zeros(cols, np.int64)
        mu_all = np.zeros(cols)
        m2_all = np.zeros(cols)
        sum_all = np.zeros(cols)
        for c_, s_, mu, q in parts:
            nt = n_all + c_
            share = np.divide(c_, nt, out=np.zeros(cols), where=nt > 0)
            delta = mu - mu_all
            m2_all = m2_all + q + delta * delta * (n_all * share)
            mu_all = mu_all + delta * share
            n_all = nt
            sum_all = sum_all + s_
        elapsed = MPI.Wtime() - t_start
        with np.errstate(invalid="ignore", divide="ignore"):
            var = m2_all / n_all
        out = {
            "program": "handwritten_stats", "kernel": args.kernel, "ranks": size, "rows": rows,
            "cols": cols, "bytes": rows * row_bytes, "piece_rows": piece,
            "elapsed_s": elapsed, "read_s": max(t[0] for t in timings),
            "compute_s": max(t[1] for t in timings), "compile_s": max(t[2] for t in timings),
            "reduce_s": reduce_s,
            "results": {"count": g_count.tolist(), "nan_count": g_nan.tolist(), "sum": sum_all.tolist(),
                        "mean": mu_all.tolist(), "var": var.tolist(), "min": g_min.tolist(),
                        "max": g_max.tolist(), "hist": g_hist.tolist()},
        }
        text = json.dumps(out)
        print(text)
        if args.json:
            with open(args.json, "w") as fh:
                fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
