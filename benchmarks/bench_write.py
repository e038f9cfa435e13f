"""A 1:1 transform that writes as much as it reads: hpcdist against the machine's read+write limit,
numpy + h5py in one process, and dask (issue 11).

The transform is ``y = (x - 1.5) * 0.5`` over a float64 dataset (2 GiB by default), written to a
new HDF5 file on the same file system. Contenders, at each rank/process count in ``--ranks``:

- ``limit``: ``mpiexec -n P`` of this script's own worker: every process ``pread``s its half of the
  input's bytes into one reused buffer and ``pwrite``s them into a preallocated output (no compute,
  no HDF5): what the disk and page cache allow;
- ``hpcdist``: ``mpiexec -n P hpcdist run`` of a one-line transform job (``--output``);
- ``numpy``: read a block (reused buffer), compute, ``h5py`` write, in one process;
- ``dask``: ``da.from_array`` -> ``map_blocks`` -> ``da.to_hdf5`` (its threaded scheduler).

Every output is checked equal to hpcdist's, bit for bit, before any timing. Each contender then
runs ``--repeats`` times, interleaved (A B C D, B C D A, ...): ``warm`` runs find the input in the
page cache; with ``--cold`` (root only) the page cache is dropped before each run. Outputs are
removed after each run (so the next run writes into memory freed seconds earlier: this VM's
balloon device makes that slow, which is why every program reuses its buffers). Each run's peak
RSS is the largest of any process it started (``ru_maxrss`` of its children, in a fresh wrapper).

    python benchmarks/bench_write.py                          # 2 GiB, ranks 1 and 2, 5 repeats
    python benchmarks/bench_write.py --rows 4096 --repeats 1  # a look on tiny data (seconds)
"""

from __future__ import annotations

import argparse
import json
import re
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpcdist.bench.launch import hpcdist_cmd, launch_env, mpi_cmd  # noqa: E402

JOB = '''"""y = (x - 1.5) * 0.5, row for row (the benchmark's 1:1 transform), into hpcdist's reused buffer."""
import numpy as np
from hpcdist.sinks import Output
OUTPUTS = {"y": Output(rows="same")}


def transform(shard, ctx, out):
    y = np.subtract(shard, 1.5, out=out.get("y"))
    return {"y": np.multiply(y, 0.5, out=y)}
'''
BLOCK_ROWS = 1 << 16


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=_count, default=2**26, help="rows, e.g. 4096 or 2**26 (the default)")
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--data", default=str(ROOT / "bench-data"), help="directory of input and outputs")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cold", action="store_true", help="drop the page cache before each run (root)")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "write.json"))
    args = ap.parse_args(argv)
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    src = data / f"write-{args.rows}x{args.cols}.h5"
    make_input(src, args.rows, args.cols)
    job = data / "bench_write_job.py"
    job.write_text(JOB)
    ranks = [int(r) for r in args.ranks.split(",")]
    contenders = [(name, p) for p in ranks for name in ("limit", "hpcdist")] + [("numpy", 1), ("dask", 1)]
    reference = data / "write-reference.h5"
    command(("hpcdist", 1), src, job, reference, wrapped=False)
    for name, p in contenders:                          # every output equal before any timing
        out = data / f"write-check-{name}-{p}.h5"
        command((name, p), src, job, out, wrapped=False)
        if name != "limit":
            same(reference, out)
        os.unlink(out)
    runs: dict[str, list[dict]] = {f"{n}@{p}": [] for n, p in contenders}
    for r in range(args.repeats):
        order = contenders[r % len(contenders):] + contenders[: r % len(contenders)]
        for name, p in order:
            if args.cold:
                drop_caches()
            out = data / f"write-run-{name}-{p}.h5"
            runs[f"{name}@{p}"].append(command((name, p), src, job, out, wrapped=True))
            os.unlink(out)
    record = summarize(runs, src, args)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(record, indent=1))
    print(table(record))
    os.unlink(reference)
    return 0


def _count(text: str) -> int:
    base, _, power = text.partition("**")
    return int(base) ** int(power) if power else int(text)


def make_input(path: Path, rows: int, cols: int) -> None:
    """A seeded N(0, 1) contiguous float64 dataset (reused when the shape matches)."""
    import h5py

    if path.exists():
        with h5py.File(path, "r") as f:
            if f["x"].shape == (rows, cols):
                return
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("x", shape=(rows, cols), dtype=np.float64)
        for a in range(0, rows, BLOCK_ROWS):
            b = min(rows, a + BLOCK_ROWS)
            ds[a:b] = rng.standard_normal((b - a, cols))


def command(who: tuple[str, int], src: Path, job: Path, out: Path, wrapped: bool) -> dict:
    """Run one contender; with ``wrapped``, inside a fresh wrapper that reports the peak RSS."""
    name, p = who
    me = [sys.executable, str(Path(__file__).resolve())]
    cmd = {
        "limit": mpi_cmd(p, [*me, "_limit", str(src), str(out)]),
        "hpcdist": mpi_cmd(p, [*hpcdist_cmd(), "run", str(job), "--input", f"{src}:/x", "--output", str(out)]),
        "numpy": [*me, "_numpy", str(src), str(out)],
        "dask": [*me, "_dask", str(src), str(out)],
    }[name]
    if wrapped:
        cmd = [*me, "_rss", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=launch_env())
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    if not wrapped:
        return {}
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if name == "hpcdist":          # the run's own seconds, launch and interpreter start-up excluded
        import h5py

        with h5py.File(out, "r") as f:
            got["inner_s"] = float(f.attrs["elapsed_s"])
    return got


def same(a: Path, b: Path) -> None:
    import h5py

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        x, y = fa["y"], fb["y"]
        assert x.shape == y.shape and x.dtype == y.dtype, (a, b)
        for i in range(0, x.shape[0], BLOCK_ROWS):
            assert x[i:i + BLOCK_ROWS].tobytes() == y[i:i + BLOCK_ROWS].tobytes(), f"{b} differs at row {i}"


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as fh:
        fh.write("3\n")


def summarize(runs: dict[str, list[dict]], src: Path, args: argparse.Namespace) -> dict:
    nbytes = args.rows * args.cols * 8
    out: dict = {"bytes": nbytes, "rows": args.rows, "cols": args.cols, "cold": args.cold,
                 "repeats": args.repeats, "contenders": {}}
    for key, rs in runs.items():
        walls = [r["wall_s"] for r in rs]
        inner = [r["inner_s"] for r in rs]
        out["contenders"][key] = {"wall_s": walls, "best_s": min(walls), "median_s": statistics.median(walls),
                                  "inner_s": inner, "best_inner_s": min(inner),
                                  "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
                                  "gb_s": nbytes / min(inner) / 1e9}
    return out


def table(record: dict) -> str:
    """Inner seconds (start-up excluded; hpcdist's own elapsed_s) and wall seconds (launcher's)."""
    rows = ["| contender | best inner s | best wall s | GB/s in (inner) | limit / inner | peak RSS MiB |",
            "|---|---|---|---|---|---|"]
    limits = {k.split("@")[1]: v["best_inner_s"] for k, v in record["contenders"].items() if k.startswith("limit@")}
    for key, v in record["contenders"].items():
        limit = limits.get(key.split("@")[1], limits.get("2", limits.get("1")))
        ratio = limit / v["best_inner_s"] if limit else float("nan")
        rows.append(f"| {key} | {v['best_inner_s']:.3f} | {v['best_s']:.3f} | {v['gb_s']:.2f} | {ratio:.2f} | "
                    f"{v['peak_rss_mib']:.0f} |")
    return "\n".join(rows)


# --- the contenders' own programs (run as subprocesses of this script) ---

def limit_worker(src: str, out: str) -> None:
    """Each rank: pread its half of the input bytes, pwrite them at the same place in ``out``."""
    import h5py
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    with h5py.File(src, "r") as f:
        offset, nbytes = f["x"].id.get_offset(), f["x"].id.get_storage_size()
    if comm.rank == 0:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.ftruncate(fd, nbytes)
        os.close(fd)
    comm.Barrier()
    t = time.perf_counter()
    share = -(-nbytes // comm.size)
    lo, hi = comm.rank * share, min(nbytes, (comm.rank + 1) * share)
    buf = np.empty(64 << 20, np.uint8)
    fin, fout = os.open(src, os.O_RDONLY), os.open(out, os.O_WRONLY)
    for at in range(lo, hi, len(buf)):
        view = memoryview(buf)[: min(len(buf), hi - at)]
        got = os.preadv(fin, [view], offset + at)
        done = 0
        while done < got:
            done += os.pwrite(fout, view[done:got], at + done)
    os.fsync(fout)
    comm.Barrier()
    print(json.dumps({"inner_s": time.perf_counter() - t}), flush=True)


def numpy_worker(src: str, out: str) -> None:
    import h5py

    with h5py.File(src, "r") as fi, h5py.File(out, "w") as fo:
        x = fi["x"]
        y = fo.create_dataset("y", shape=x.shape, dtype=np.float64)
        buf = np.empty((BLOCK_ROWS * 16, *x.shape[1:]), np.float64)
        res = np.empty_like(buf)
        for a in range(0, x.shape[0], len(buf)):
            b = min(x.shape[0], a + len(buf))
            x.read_direct(buf, np.s_[a:b], np.s_[0:b - a])
            np.subtract(buf[: b - a], 1.5, out=res[: b - a])
            np.multiply(res[: b - a], 0.5, out=res[: b - a])
            y[a:b] = res[: b - a]
    os.sync()


def dask_worker(src: str, out: str) -> None:
    import dask.array as da
    import h5py

    with h5py.File(src, "r") as fi:
        x = da.from_array(fi["x"], chunks=(BLOCK_ROWS * 16, -1))
        da.to_hdf5(out, "/y", x.map_blocks(lambda b: (b - 1.5) * 0.5, dtype=np.float64))
    os.sync()


def rss_wrapper(cmd: list[str]) -> None:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        sys.exit(proc.returncode)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ranks' lines may arrive interleaved on one line through mpiexec: take every {"inner_s": x} found
    inner = [float(v) for v in re.findall(r'\{"inner_s": ([0-9.eE+-]+)\}', proc.stdout)]
    print(json.dumps({"wall_s": wall, "peak_rss_mib": peak_kib / 1024, "inner_s": max(inner, default=wall)}))


def timed(work) -> None:
    """Print the seconds ``work`` takes (after imports and file opening: the inner time)."""
    t = time.perf_counter()
    work()
    print(json.dumps({"inner_s": time.perf_counter() - t}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        mode, rest = sys.argv[1], sys.argv[2:]
        {"_limit": lambda: limit_worker(*rest), "_numpy": lambda: timed(lambda: numpy_worker(*rest)),
         "_dask": lambda: timed(lambda: dask_worker(*rest)), "_rss": lambda: rss_wrapper(rest)}[mode]()
        sys.exit(0)
    sys.exit(main())
