"""``hpcdist bench compare``: the stats job and its peers on the same data and the same cores.

Peers, each computing the same statistics (per column: count, nan_count, sum, mean, var, min,
max and numpy.histogram's counts over [lo, hi]):

- ``hpcdist_n1``, ``hpcdist_nW``: ``mpiexec -n 1|W python -m hpcdist run JOB`` (W = --workers);
- ``handwritten_n1``, ``handwritten_nW``: hpcdist/bench/peer_scripts/handwritten_stats.py (mpi4py +
  h5py), the program a careful HPC programmer writes without a framework, running the same numba
  kernel as hpcdist (``--kernel hpcdist``), so the difference is what the framework costs (shipped
  with the package, so compare works from an installed hpcdist too);
- ``numpy``: one process, shard-sized pieces, numpy per piece, Chan's merge (no kernel at all);
- each other peer as a competent user would write it: ``multiprocessing``, a ``Pool(W)`` whose
  workers read a contiguous block each and run the stats job's numba kernel per piece
  (:mod:`hpcdist.bench.kernel_stats`); ``dask``, that block task as ``dask.delayed`` calls on a
  ``distributed.LocalCluster`` of W one-thread processes; ``dask_threads``, ``dask.array`` over the
  HDF5 dataset on the threaded scheduler (``da.nansum / nanmean / nanvar / nanmin / nanmax``, a
  ``da.histogram`` per column, one ``dask.compute``, nothing pickled).

A first round runs every peer once (warm-up: numba caches, page cache, pool and cluster start) and
cross-checks every result against ``hpcdist_n1``: counts and histogram exactly, the rest within a
relative tolerance. A disagreement ends the comparison before any time is reported
(:class:`~hpcdist.bench.checks.PeerMismatch`, exit 1, naming the peer and the field). Then ``--repeat`` timed rounds,
every peer once per round, the order rotating, each round's results checked again. A peer whose
dependency is missing (dask) is reported as skipped, never faked.

Times: ``time_s`` is each peer's own measurement of its work (open/read the data -> results; the
MPI programs' elapsed_s, barrier to barrier), ``wall_s`` the whole command for the MPI programs
(launcher and interpreter start-up included); pool and cluster start-up are reported apart
(``startup_s``). Ratios: a peer's time / hpcdist's at the same number of workers, the median of
the per-round ratios (>1: hpcdist is faster).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from hpcdist.bench import launch, peer_scripts, quiet
from hpcdist.bench.checks import FIELDS, RTOL, cross_check
from hpcdist.bench.kernel_stats import kernel_block_partial, merge_all
from hpcdist.bench.metrics import summary
from hpcdist.bench.numpy_stats import block_partial, blocks, finish, finite_range
from hpcdist.errors import UserError

SHARD_BYTES = 4 << 20


@dataclass
class Setup:
    """What every peer computes on: the dataset and the statistics' parameters."""

    job_path: str
    spec: str                 # FILE.h5:/dataset
    rows: int
    cols: int
    dtype: str
    lo: np.ndarray            # per column
    hi: np.ndarray
    bins: int
    params: dict[str, str]    # as given to hpcdist run
    workers: int
    tmp: str
    piece_rows: int = 0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.spec.rpartition(":")[0]

    @property
    def dataset(self) -> str:
        return self.spec.rpartition(":")[2]

    @property
    def data_bytes(self) -> int:
        return self.rows * self.cols * np.dtype(self.dtype).itemsize


@dataclass
class PeerRun:
    results: dict[str, np.ndarray]
    time_s: float
    wall_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ---- the peers ----------------------------------------------------------------------------------

class Peer:
    name = ""
    workers = 1

    def skip_reason(self, s: Setup) -> str | None:
        return None

    def start(self, s: Setup) -> float:
        """Start pools / clusters (not timed with the work); returns the seconds it took."""
        return 0.0

    def run(self, s: Setup) -> PeerRun:
        raise NotImplementedError

    def stop(self) -> None:
        pass


class HpcdistPeer(Peer):
    def __init__(self, ranks: int) -> None:
        self.workers = ranks
        self.name = f"hpcdist_n{ranks}"

    def run(self, s: Setup) -> PeerRun:
        out = os.path.join(s.tmp, f"{self.name}.h5")
        params = [a for k, v in s.params.items() for a in ("--param", f"{k}={v}")]
        got = launch.run_hpcdist(self.workers, s.job_path, ["--input", s.spec, *params], out, s.env)
        attrs = got.seconds("elapsed_s", "compute_s", "read_s", "reduce_s", "compile_s")
        return PeerRun({k: got.results[k] for k in FIELDS}, attrs["elapsed_s"], got.wall_s, attrs)


class HandwrittenPeer(Peer):
    def __init__(self, ranks: int) -> None:
        self.workers = ranks
        self.name = f"handwritten_n{ranks}"

    def skip_reason(self, s: Setup) -> str | None:
        if not (np.all(s.lo == s.lo[0]) and np.all(s.hi == s.hi[0])):
            return "the hand-written script takes one lo/hi for every column"
        return None

    def run(self, s: Setup) -> PeerRun:
        out = os.path.join(s.tmp, f"{self.name}.json")
        script = peer_scripts.handwritten_stats_cmd()
        cmd = launch.mpi_cmd(self.workers, [*script, s.spec, "--lo", repr(float(s.lo[0])), "--hi",
                                            repr(float(s.hi[0])), "--bins", str(s.bins), "--json", out,
                                            "--kernel", "hpcdist"])
        _, wall = launch.launch(cmd, s.env)
        with open(out) as fh:
            got = json.load(fh)
        os.unlink(out)
        res = {k: np.asarray(v) for k, v in got["results"].items()}
        return PeerRun(res, float(got["elapsed_s"]), wall,
                       {k: float(got[k]) for k in ("compute_s", "read_s", "reduce_s", "compile_s")})


class NumpyPeer(Peer):
    name = "numpy"

    def run(self, s: Setup) -> PeerRun:
        t = time.perf_counter()
        part = block_partial(s.path, s.dataset, 0, s.rows, s.lo, s.hi, s.bins, s.piece_rows)
        res = finish(part)
        return PeerRun(res, time.perf_counter() - t)


class PoolPeer(Peer):
    name = "multiprocessing"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = None

    def start(self, s: Setup) -> float:
        import multiprocessing as mp
        t = time.perf_counter()
        # spawn, not fork: the parent may hold MPI / HDF5 state that must not be duplicated
        self.pool = mp.get_context("spawn").Pool(self.workers)
        self.pool.map(_noop, range(self.workers))
        return time.perf_counter() - t

    def run(self, s: Setup) -> PeerRun:
        t = time.perf_counter()
        tasks = [(s.path, s.dataset, a, b, s.lo, s.hi, s.bins, s.piece_rows)
                 for a, b in blocks(s.rows, self.workers, s.piece_rows) if b > a]
        res = finish(merge_all(self.pool.starmap(kernel_block_partial, tasks)))
        return PeerRun(res, time.perf_counter() - t)

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def _noop(i: int) -> int:
    return i


class DaskPeer(Peer):
    name = "dask"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.cluster = self.client = None

    def skip_reason(self, s: Setup) -> str | None:
        try:
            import dask.array  # noqa: F401
            import distributed  # noqa: F401
        except ImportError as exc:
            return f"{exc.name or 'dask'} is not installed (pip install 'hpcdist[peers]')"
        return None

    def start(self, s: Setup) -> float:
        import dask
        from distributed import Client, LocalCluster
        t = time.perf_counter()
        dask.config.set({"distributed.worker.daemon": False, "logging.distributed": "error"})
        self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                    dashboard_address=None, silence_logs=40)
        self.client = Client(self.cluster)
        return time.perf_counter() - t

    def run(self, s: Setup) -> PeerRun:
        import dask
        t = time.perf_counter()
        tasks = [dask.delayed(kernel_block_partial)(s.path, s.dataset, a, b, s.lo, s.hi, s.bins, s.piece_rows)
                 for a, b in blocks(s.rows, self.workers, s.piece_rows) if b > a]
        res = finish(merge_all(list(dask.compute(*tasks))))
        return PeerRun(res, time.perf_counter() - t)

    def stop(self) -> None:
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - shutting down
                    pass
        self.client = self.cluster = None


class DaskThreadsPeer(DaskPeer):
    name = "dask_threads"

    def start(self, s: Setup) -> float:
        return 0.0          # the threaded scheduler needs no cluster

    def run(self, s: Setup) -> PeerRun:
        import dask
        import dask.array as da
        import h5py
        t = time.perf_counter()
        with h5py.File(s.path, "r") as f:
            ds = f[s.dataset]
            x = da.from_array(ds, chunks=(s.piece_rows, *ds.shape[1:]))
            x = x.reshape(s.rows, s.cols) if x.ndim == 1 else x.reshape(s.rows, -1)
            nan = da.isnan(x)
            parts = [(~nan).sum(axis=0), nan.sum(axis=0), da.nansum(x, axis=0), da.nanmean(x, axis=0),
                     da.nanvar(x, axis=0), da.nanmin(x, axis=0), da.nanmax(x, axis=0)]
            parts += [da.histogram(x[:, j], bins=s.bins, range=(float(s.lo[j]), float(s.hi[j])))[0]
                      for j in range(s.cols)]
            got = dask.compute(*parts, scheduler="threads", num_workers=self.workers)
        res = dict(zip(("count", "nan_count", "sum", "mean", "var", "min", "max"), got[:7]))
        res["hist"] = np.stack(got[7:]).astype(np.int64)
        return PeerRun(res, time.perf_counter() - t)


def default_peers(workers: int) -> list[Peer]:
    return [HpcdistPeer(1), HpcdistPeer(workers), HandwrittenPeer(1), HandwrittenPeer(workers), NumpyPeer(),
            PoolPeer(workers), DaskPeer(workers), DaskThreadsPeer(workers)]


# ---- the comparison -----------------------------------------------------------------------------

def compare(s: Setup, peers: list[Peer], repeat: int, say=print, rtol: float = RTOL) -> dict[str, Any]:
    """Warm-up + cross-check round, then ``repeat`` timed rounds. Returns the ``peers`` and
    ``checks`` parts of the record; raises PeerMismatch before any timing on a disagreement."""
    out: dict[str, Any] = {}
    active: list[Peer] = []
    for p in peers:
        reason = p.skip_reason(s)
        if reason:
            say(f"hpcdist bench compare: {p.name}: skipped ({reason})")
            out[p.name] = {"status": "skipped", "reason": reason, "workers": p.workers}
        else:
            active.append(p)
    if not active or active[0].name != "hpcdist_n1":
        raise UserError("compare needs hpcdist_n1 as the reference peer")
    try:
        startup = {}
        for p in active:
            startup[p.name] = p.start(s)
        # round 0: warm-up and the cross-check, before anything is timed
        ref = None
        checks: dict[str, Any] = {"rtol": rtol, "reference": "hpcdist_n1"}
        for p in active:
            say(f"hpcdist bench compare: check round: {p.name}")
            got = p.run(s)
            if ref is None:
                ref = got.results
                continue
            checks[p.name] = cross_check(p.name, ref, got.results, rtol)
        checks["all_ok"] = True
        runs: dict[str, list[PeerRun]] = {p.name: [] for p in active}
        for r in range(repeat):
            k = r % len(active)
            for p in active[k:] + active[:k]:
                with quiet.OthersCpu() as others:
                    got = p.run(s)
                got.extra["foreign_cpu_s"] = others.cpu_s
                got.extra["disturbed"] = others.disturbed
                if p.name != "hpcdist_n1":
                    cross_check(p.name, ref, got.results, rtol)
                else:
                    cross_check(p.name, ref, got.results, 0.0)
                runs[p.name].append(got)
                say(f"hpcdist bench compare: round {r + 1}/{repeat}: {p.name:18s} {got.time_s:8.3f} s"
                    + (f" (wall {got.wall_s:.3f} s)" if got.wall_s is not None else "")
                    + (f"; disturbed: others used {others.cpu_s:.2f} cpu-s" if others.disturbed else ""))
    finally:
        for p in active:
            p.stop()
    for p in active:
        rs = runs[p.name]
        base = f"hpcdist_n{p.workers}"
        entry: dict[str, Any] = {
            "status": "ok", "workers": p.workers, "time_s": summary([x.time_s for x in rs]),
            "wall_s": summary([x.wall_s for x in rs]) if rs[0].wall_s is not None else None,
            "startup_s": startup.get(p.name) or None,
            "foreign_cpu_s": summary([x.extra["foreign_cpu_s"] for x in rs]),
            "disturbed_rounds": sum(bool(x.extra["disturbed"]) for x in rs),
        }
        entry["GBps"] = s.data_bytes / entry["time_s"]["median"] / 1e9
        for key in ("compute_s", "read_s", "reduce_s", "compile_s"):
            if key in rs[0].extra:
                entry[key] = summary([x.extra[key] for x in rs])
        if "compute_s" in entry:
            entry["kernel_GBps_per_rank"] = s.data_bytes / p.workers / entry["compute_s"]["median"] / 1e9
        if base in runs and runs[base]:
            ratios = [x.time_s / y.time_s for x, y in zip(rs, runs[base])]
            entry["ratio_vs_hpcdist"] = statistics.median(ratios)
            entry["ratio_rounds"] = ratios
            entry["ratio_base"] = base
            if entry["wall_s"] is not None and runs[base][0].wall_s is not None:
                entry["wall_ratio_vs_hpcdist"] = statistics.median(
                    [x.wall_s / y.wall_s for x, y in zip(rs, runs[base])])
        out[p.name] = entry
    order = [p.name for p in peers]
    return {"peers": {k: out[k] for k in order if k in out}, "checks": checks}


def make_setup(job_path: str, spec: str, params: Mapping[str, str], workers: int, tmp: str) -> Setup:
    """The dataset's shape and the statistics' parameters; lo/hi found (like the job does) when
    not given."""
    import h5py
    from hpcdist.job import load_job
    from hpcdist.params import resolve_params

    job = load_job(job_path)
    if job.name != "stats":
        raise UserError(f"compare knows the peers of the stats job (jobs/stats.py) only, got job {job.name}")
    if spec.startswith(("synthetic:", "range:")) or spec.endswith(".npy") or ":" not in spec:
        raise UserError(f"compare needs an HDF5 dataset (FILE.h5:/dataset) that every peer can read, got {spec}")
    values = resolve_params(job.params, params, job.name)
    path, _, dset = spec.rpartition(":")
    try:
        with h5py.File(path, "r") as f:
            ds = f[dset]
            shape, dtype, chunks = ds.shape, ds.dtype, ds.chunks
    except (OSError, KeyError) as exc:
        raise UserError(f"{spec}: cannot open ({exc})") from None
    if len(shape) not in (1, 2) or dtype.kind != "f":
        raise UserError(f"{spec}: compare needs a 1-D or 2-D floating-point dataset, got {dtype} {shape}")
    rows, cols = shape[0], (shape[1] if len(shape) > 1 else 1)
    bins = int(values["bins"])
    if np.isnan(values["lo"]):
        lo, hi = finite_range(path, dset, rows, cols)
    else:
        lo, hi = np.full(cols, values["lo"]), np.full(cols, values["hi"])
    row_bytes = cols * dtype.itemsize
    chunk = chunks[0] if chunks else 1
    piece = max(chunk, (SHARD_BYTES // row_bytes) // chunk * chunk)
    env = launch.launch_env()
    return Setup(job_path=job_path, spec=spec, rows=rows, cols=cols, dtype=dtype.str, lo=lo, hi=hi, bins=bins,
                 params=dict(params), workers=workers, tmp=tmp, piece_rows=min(piece, rows), env=env)


def memory_limits(workers: list[int], mib: int, env: Mapping[str, str]) -> dict[str, Any]:
    """STREAM-style bandwidth and allreduce at each worker count, each under its own mpiexec."""
    out = {}
    for n in workers:
        cmd = launch.mpi_cmd(n, [sys.executable, "-m", "hpcdist.bench.limits", "--mib", str(mib)])
        proc, _ = launch.launch(cmd, env)
        out[str(n)] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def new_tmp(directory: str) -> str:
    os.makedirs(directory, exist_ok=True)
    return tempfile.mkdtemp(prefix=".compare-tmp-", dir=directory)


Factory = Callable[[int], list[Peer]]
