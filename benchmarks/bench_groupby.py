"""Group-by with many keys: hpcdist (jobs/groupby.py) against pandas, dask and a hand-written MPI script.

Data: ROWS rows x (1 key + 2 value columns), float64, keys uniform in [0, KEYS), one HDF5 file per
key count under bench-data/ (made once, reused when the shape matches). Contenders, each a fresh
process timed from launch to results written, interleaved round by round (the machine drifts):

- hpcdist at 1 and 2 ranks: ``mpiexec -n N hpcdist run jobs/groupby.py --param key=0 --output ...``
  (its own ``elapsed_s`` is recorded too);
- pandas, 1 process: h5py read of the whole dataset, ``DataFrame.groupby(0).agg(...)``;
- dask dataframe, 2 worker processes (``LocalCluster``): ``dd.from_map`` with an h5py read per
  partition (``dd.from_dask_array(da.from_array(h5py_dataset))`` fails in current dask);
- a hand-written mpi4py + numba script at 2 ranks (this file, ``--peer mpi``): each rank reads its
  contiguous rows, hash-aggregates them with its own numba kernel (slots found first, then the
  accumulators updated), sends each key to rank ``hash(key) % P`` in one ``Alltoallv``, merges with
  Chan's update and rank 0 gathers and sorts.

Before anything is timed, every contender's result is checked against hpcdist's at 1 rank (keys,
counts, min and max exactly; sum, mean, var to 1e-9). Results: benchmarks/results/groupby.json and
a markdown table on stdout. Target (issue 12): hpcdist at 2 ranks ahead of pandas and dask on both
key counts and within 1.1x of the hand-written script.

    python benchmarks/bench_groupby.py                       # full size: 10^8 rows, 10^3 and 10^6 keys
    python benchmarks/bench_groupby.py --rows 200000 --keys 1000,100000 --repeats 1   # a check in seconds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GROUPBY = ROOT / "jobs" / "groupby.py"
NAMES = ("keys", "count", "sum", "mean", "var", "min", "max")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- data --------------------------------------------------------------------------------------

def ensure_data(path: Path, rows: int, keys: int) -> None:
    """rows x 3 float64 at path:/e: key in column 0, two N(0, 1) value columns (1 MiB chunks)."""
    if path.exists():
        with h5py.File(path, "r") as f:
            if "e" in f and f["e"].shape == (rows, 3) and f["e"].attrs.get("keys") == keys:
                return
    say(f"making {path} ({rows:,} rows, {keys:,} keys) ...")
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(keys)
    step = 1 << 22
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("e", shape=(rows, 3), dtype="f8", chunks=(1 << 15, 3))
        ds.attrs["keys"] = keys
        for start in range(0, rows, step):
            n = min(step, rows - start)
            block = np.empty((n, 3))
            block[:, 0] = rng.integers(0, keys, n)
            block[:, 1:] = rng.standard_normal((n, 2))
            ds[start:start + n] = block


def write_results(path: str, results: dict[str, np.ndarray]) -> None:
    with h5py.File(path, "w") as f:
        for name in NAMES:
            f[name] = results[name]


def read_results(path: str) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in NAMES}


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> str | None:
    """None if b equals a (exact keys/count/min/max, sum/mean/var to 1e-9), else what differs."""
    for name in NAMES:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        if x.shape != y.shape:
            return f"{name}: shape {y.shape} != {x.shape}"
        ok = (np.array_equal(x, y, equal_nan=True) if name in ("keys", "count", "min", "max")
              else np.allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True))
        if not ok:
            return f"{name} differs"
    return None


# ---- peers (each runs in its own process: python bench_groupby.py --peer NAME DATA OUT) --------

def frame_results(g) -> dict[str, np.ndarray]:
    """pandas/dask aggregate columns -> the result layout (keys, then (nkeys, 2) arrays)."""
    g = g.sort_index()
    out = {"keys": g.index.to_numpy().astype(np.int64)}
    for stat in ("count", "sum", "mean", "var", "min", "max"):
        out[stat] = np.column_stack([g[(col, stat)].to_numpy() for col in (1, 2)])
    out["count"] = out["count"].astype(np.int64)
    return out


AGG = {1: ["count", "sum", "mean", "min", "max"], 2: ["count", "sum", "mean", "min", "max"]}


def peer_pandas(data: str, out: str) -> None:
    import pandas as pd
    file, dset = data.split(":")
    with h5py.File(file, "r") as f:
        arr = f[dset][()]
    df = pd.DataFrame({0: arr[:, 0].astype(np.int64), 1: arr[:, 1], 2: arr[:, 2]})
    grouped = df.groupby(0)
    g = grouped.agg(AGG)
    var = grouped[[1, 2]].var(ddof=0)
    for col in (1, 2):
        g[(col, "var")] = var[col]
    write_results(out, frame_results(g))


def _read_part(spec: tuple[str, str, int, int]):
    import pandas as pd
    file, dset, start, stop = spec
    with h5py.File(file, "r") as f:
        arr = f[dset][start:stop]
    return pd.DataFrame({0: arr[:, 0].astype(np.int64), 1: arr[:, 1], 2: arr[:, 2]})


def peer_dask(data: str, out: str, workers: int = 2, part_rows: int = 1 << 22) -> None:
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster
    file, dset = data.split(":")
    with h5py.File(file, "r") as f:
        rows = f[dset].shape[0]
    parts = [(file, dset, s, min(s + part_rows, rows)) for s in range(0, rows, part_rows)]
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster, Client(cluster):
        df = dd.from_map(_read_part, parts)
        grouped = df.groupby(0)
        g, var = dd.compute(grouped.agg(AGG), grouped[[1, 2]].var(ddof=0))
    for col in (1, 2):
        g[(col, "var")] = var[col]
    write_results(out, frame_results(g))


def peer_mpi(data: str, out: str) -> None:
    """The hand-written script: read my rows, hash-aggregate, one Alltoallv, merge, gather."""
    from mpi4py import MPI
    from numba import njit

    @njit(cache=True)
    def aggregate(keys, vals, table, slots, used_keys):      # slots of all rows first, then update
        mask = table.shape[0] - 1
        n = keys.shape[0]
        used = 0
        for i in range(n):
            h = (keys[i] * 0x9E3779B1) & mask
            while table[h] >= 0 and used_keys[table[h]] != keys[i]:
                h = (h + 1) & mask
            if table[h] < 0:
                table[h] = used
                used_keys[used] = keys[i]
                used += 1
            slots[i] = table[h]
        acc = np.zeros((used, 2, 6))            # count, sum, mean, m2, min, max per value column
        acc[:, :, 4], acc[:, :, 5] = np.inf, -np.inf
        for i in range(n):
            s = slots[i]
            for j in range(2):
                x = vals[i, j]
                if x == x:
                    acc[s, j, 0] += 1
                    acc[s, j, 1] += x
                    acc[s, j, 4] = min(acc[s, j, 4], x)
                    acc[s, j, 5] = max(acc[s, j, 5], x)
        for s in range(used):
            for j in range(2):
                if acc[s, j, 0] > 0:
                    acc[s, j, 2] = acc[s, j, 1] / acc[s, j, 0]
        for i in range(n):
            s = slots[i]
            for j in range(2):
                x = vals[i, j]
                if x == x:
                    d = x - acc[s, j, 2]
                    acc[s, j, 3] += d * d
        return used_keys[:used].copy(), acc

    @njit(cache=True)
    def merge_sorted(keys, acc):                  # keys sorted: Chan's update over runs of one key
        out_k = np.empty(keys.shape[0], np.int64)
        out = np.zeros((keys.shape[0], 2, 6))
        m = -1
        for i in range(keys.shape[0]):
            if m < 0 or out_k[m] != keys[i]:
                m += 1
                out_k[m] = keys[i]
                out[m] = acc[i]
                continue
            for j in range(2):
                a, b = out[m, j], acc[i, j]
                n = a[0] + b[0]
                if n > 0:
                    d = b[2] - a[2]
                    share = b[0] / n
                    a[3] = a[3] + b[3] + d * d * a[0] * share
                    a[2] = a[2] + d * share
                a[0] = n
                a[1] += b[1]
                a[4] = min(a[4], b[4])
                a[5] = max(a[5], b[5])
        return out_k[:m + 1], out[:m + 1]

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    file, dset = data.split(":")
    with h5py.File(file, "r") as f:
        rows = f[dset].shape[0]
        lo, hi = rows * rank // size, rows * (rank + 1) // size
        block = np.empty((hi - lo, 3))
        f[dset].read_direct(block, np.s_[lo:hi])
    keys = block[:, 0].astype(np.int64)
    tsize = 1 << max(4, int(2 * max(len(keys), 1)).bit_length())
    ukeys, acc = aggregate(keys, np.ascontiguousarray(block[:, 1:]), np.full(tsize, -1, np.int64),
                           np.empty(len(keys), np.int64), np.empty(len(keys), np.int64))
    dest = (ukeys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) >> np.uint64(40)) % np.uint64(size)
    order = np.argsort(dest, kind="stable")
    ukeys, acc, dest = ukeys[order], acc[order], dest[order]
    scount = np.bincount(dest.astype(np.int64), minlength=size).astype(np.int64)
    rcount = np.empty(size, np.int64)
    comm.Alltoall(scount, rcount)
    sd, rd = np.concatenate([[0], np.cumsum(scount)[:-1]]), np.concatenate([[0], np.cumsum(rcount)[:-1]])
    rkeys = np.empty(int(rcount.sum()), np.int64)
    racc = np.empty((int(rcount.sum()), 2, 6))
    comm.Alltoallv([ukeys, (scount, sd), MPI.INT64_T], [rkeys, (rcount, rd), MPI.INT64_T])
    comm.Alltoallv([acc, (scount * 12, sd * 12), MPI.DOUBLE], [racc, (rcount * 12, rd * 12), MPI.DOUBLE])
    order = np.argsort(rkeys, kind="stable")
    mk, macc = merge_sorted(rkeys[order], racc[order])
    parts = comm.gather((mk, macc), root=0)
    if rank == 0:
        k = np.concatenate([p[0] for p in parts])
        a = np.concatenate([p[1] for p in parts])
        order = np.argsort(k)
        k, a = k[order], a[order]
        cnt = a[:, :, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            res = {"keys": k, "count": cnt.astype(np.int64), "sum": a[:, :, 1],
                   "mean": np.where(cnt > 0, a[:, :, 2], np.nan), "var": np.where(cnt > 0, a[:, :, 3] / cnt, np.nan),
                   "min": np.where(cnt > 0, a[:, :, 4], np.nan), "max": np.where(cnt > 0, a[:, :, 5], np.nan)}
        write_results(out, res)


# ---- the contenders, as commands -----------------------------------------------------------------

def contenders(data: str, out: str) -> dict[str, list[str]]:
    from hpcdist.bench import launch
    me = [sys.executable, str(Path(__file__).resolve())]
    run = [*launch.hpcdist_cmd(), "run", str(GROUPBY), "--input", data, "--param", "key=0", "--output", out]
    return {
        "hpcdist_1rank": launch.mpi_cmd(1, run),
        "hpcdist_2ranks": launch.mpi_cmd(2, run),
        "pandas_1proc": [*me, "--peer", "pandas", data, out],
        "dask_2workers": [*me, "--peer", "dask", data, out],
        "mpi_numba_2ranks": launch.mpi_cmd(2, [*me, "--peer", "mpi", data, out]),
    }


def timed(cmd: list[str], out: str) -> tuple[float, dict[str, np.ndarray], float | None]:
    from hpcdist.bench import launch
    if os.path.exists(out):
        os.unlink(out)
    _, wall = launch.launch(cmd)
    elapsed = None
    with h5py.File(out, "r") as f:
        if "elapsed_s" in f.attrs:
            elapsed = float(f.attrs["elapsed_s"])
    return wall, read_results(out), elapsed


def count(text: str) -> int:
    """``100000000`` or ``10**8``."""
    base, _, power = text.partition("**")
    return int(base) ** int(power) if power else int(base)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", choices=["pandas", "dask", "mpi"], help=argparse.SUPPRESS)
    ap.add_argument("peer_args", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=count, default=10**8, help="rows (e.g. 100000000 or '10**8')")
    ap.add_argument("--keys", default="1000,1000000", help="comma-separated distinct key counts")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds (best of)")
    ap.add_argument("--data-dir", default=str(ROOT / "bench-data"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "groupby.json"))
    args = ap.parse_args()
    if args.peer:
        {"pandas": peer_pandas, "dask": peer_dask, "mpi": peer_mpi}[args.peer](*args.peer_args)
        return 0

    from hpcdist.bench import machine, quiet
    tmp = Path(tempfile.mkdtemp(prefix="bench_groupby_"))
    out = str(tmp / "result.h5")
    record = {"benchmark": "bench_groupby", "date_utc": machine.now_utc(), "rows": args.rows,
              "versions": machine.versions(), "load_before": quiet.loadavg(), "cases": {}}
    for keys in (int(k) for k in args.keys.split(",")):
        data_path = Path(args.data_dir) / f"groupby_{args.rows}x3_{keys}keys.h5"
        ensure_data(data_path, args.rows, keys)
        cmds = contenders(f"{data_path}:/e", out)
        say(f"{keys:,} keys: checking every contender against hpcdist at 1 rank (also warms caches) ...")
        reference = timed(cmds["hpcdist_1rank"], out)[1]
        for name, cmd in cmds.items():
            problem = same(reference, timed(cmd, out)[1])
            if problem:
                raise SystemExit(f"{name} disagrees with hpcdist: {problem}")
        runs: dict[str, list[dict]] = {name: [] for name in cmds}
        for rep in range(args.repeats):
            names = list(cmds)[rep % len(cmds):] + list(cmds)[:rep % len(cmds)]   # rotate the order
            for name in names:
                wall, _, elapsed = timed(cmds[name], out)
                runs[name].append({"wall_s": wall, "elapsed_s": elapsed, "load": quiet.loadavg()[0]})
                say(f"  round {rep + 1} {name}: {wall:.2f} s" + (f" (elapsed_s {elapsed:.2f})" if elapsed else ""))
        best = {name: min(r["wall_s"] for r in rs) for name, rs in runs.items()}
        record["cases"][str(keys)] = {"runs": runs, "best_wall_s": best,
                                      "hpcdist_2_over_handwritten": best["hpcdist_2ranks"] / best["mpi_numba_2ranks"],
                                      "hpcdist_2_ahead_of_pandas_and_dask":
                                          best["hpcdist_2ranks"] < min(best["pandas_1proc"], best["dask_2workers"])}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(f"| keys | {' | '.join(contenders('', ''))} | hpcdist 2 / hand-written |")
    print("|---" * 7 + "|")
    for keys, case in record["cases"].items():
        b = case["best_wall_s"]
        print(f"| {int(keys):,} | " + " | ".join(f"{v:.2f} s" for v in b.values())
              + f" | {case['hpcdist_2_over_handwritten']:.2f}x |")
    say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
