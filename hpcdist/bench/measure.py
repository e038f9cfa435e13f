"""Timed runs of a job at several rank counts inside one launch (``hpcdist bench strong|weak``).

Every rank of the launch executes :func:`study`. For each rank count p (at most the launch's
size) the first p ranks form a sub-communicator and run :func:`hpcdist.runtime.run` on it, in
process; the other ranks wait in a sleeping barrier (not a spinning one, which would take a core
from the ranks being timed). Rank counts above the launch size come from other launches: their
records are composed by ``hpcdist bench report``.

Discipline:
- the timed region is bracketed by barriers on the sub-communicator and ``MPI.Wtime``; a run's
  time is the slowest rank's;
- warm-up runs (one per rank count by default) are excluded; the first one's ``compile_s`` (numba
  compiling or loading its cache) is reported separately;
- ``--repeat N`` timed repeats, interleaved across rank counts (the order rotates every round:
  a machine whose speed drifts over minutes then biases no rank count), summarised as
  min / median / max;
- the phases (read, compute, reduce, checkpoint, output) come from the runtime's own attributes
  and from timing the checkpoint writes and the output write; per-rank busy / idle / shards give
  the imbalance;
- the memory bandwidth and allreduce micro-benchmarks run on the same sub-communicators;
- no waiting for a quiet machine unless asked (``wait_quiet``): every timed run measures the CPU
  time other programs used meanwhile, and a point with such a run is flagged ``disturbed``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from hpcdist.bench import limits, machine, quiet
from hpcdist.bench.data import data_kind, ensure_h5, input_spec
from hpcdist.bench.metrics import imbalance, summary
from hpcdist.bench.records import SCHEMA_ID
from hpcdist.errors import UserError


@dataclass
class StudyOptions:
    kind: str                         # strong | weak
    job_path: str
    ranks: list[int]
    rows: int | None = None           # strong: total rows
    rows_per_rank: int | None = None  # weak: rows per rank
    cols: int = 1
    data: str = "auto"
    data_dir: str = "bench-data"
    input: str | None = None          # a given input spec (strong only): used as is
    params: Mapping[str, str] = field(default_factory=dict)
    shard_rows: int | None = None
    schedule: str = "auto"
    checkpoint_every: float | None = None
    repeat: int = 5
    warmup: int = 1
    out: str = "bench"
    cores: int | None = None
    max_load: float = 1.0             # the quiet load (flag above it; with wait_quiet, wait for it)
    wait_quiet: bool = False
    wait_load: float = 600.0
    stream_mib: int = 256
    limits: bool = True


def parse_ranks(text: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4] (sorted, distinct, each >= 1)."""
    try:
        ranks = sorted({int(t) for t in text.replace(" ", "").split(",") if t})
    except ValueError:
        raise UserError(f"--ranks expects whole numbers separated by commas, got {text!r}") from None
    if not ranks or ranks[0] < 1:
        raise UserError(f"--ranks expects rank counts >= 1, got {text!r}")
    return ranks


def quiet_barrier(comm, sleep_s: float = 0.002) -> None:
    """A barrier that sleeps while it waits: idle ranks must not spin on a core being measured."""
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(sleep_s)


def result_digest(results: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the results' names, dtypes, shapes and bytes (equal digests: the same bits)."""
    h = hashlib.sha256()
    for name in sorted(results):
        a = np.ascontiguousarray(results[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def one_run(job, options, sub, tmp: str) -> dict[str, Any]:
    """One barrier-bracketed run on the sub-communicator ``sub``; rank 0 of it gets the numbers."""
    from mpi4py import MPI

    from hpcdist.comm import World
    from hpcdist.output import write_result
    from hpcdist.runtime import run

    world = World(sub)
    out_path = os.path.join(tmp, f"out-p{sub.Get_size()}.h5")
    sub.Barrier()
    t0 = MPI.Wtime()
    report = run(job, options, world)
    output_s = 0.0
    if world.rank == 0:
        t = time.perf_counter()
        write_result(out_path, report.results or {}, report.attrs)
        output_s = time.perf_counter() - t
    sub.Barrier()
    t1 = MPI.Wtime()
    elapsed = sub.allreduce(t1 - t0, op=MPI.MAX)
    if world.rank != 0:
        return {}
    os.unlink(out_path)
    a = report.attrs
    checkpoint_s, checkpoints = float(a["checkpoint_s"]), int(a["checkpoints"])   # rank 0's writes, timed by the runtime
    return {
        "time_s": elapsed, "runtime_elapsed_s": float(a["elapsed_s"]), "compile_s": float(a["compile_s"]),
        "read_s": float(a["read_s"]), "compute_s": float(a["compute_s"]), "reduce_s": float(a["reduce_s"]),
        "checkpoint_s": checkpoint_s, "checkpoints": checkpoints, "output_s": output_s,
        "rank_shards": [int(v) for v in a["rank_shards"]], "rank_busy_s": [float(v) for v in a["rank_busy_s"]],
        "rank_idle_s": [float(v) for v in a.get("rank_idle_s", [0.0] * len(a["rank_shards"]))],
        "rank_steals": [int(v) for v in a.get("rank_steals", [0] * len(a["rank_shards"]))],
        "schedule": str(a.get("schedule", "")), "passes": int(a["passes"]), "rows": int(a["rows"]),
        "shards": int(a["shards"]), "shard_rows": int(a["shard_rows"]), "input": str(a["input"]),
        "row_shape": [int(v) for v in a["row_shape"]], "dtype": str(a["dtype"]),
        "result_sha256": result_digest(report.results or {}),
    }


def point_from_runs(p: int, facts: Mapping[str, Any], warm: list[dict], runs: list[dict],
                    stream: Mapping[str, Any] | None, allred: Mapping[str, Any] | None) -> dict[str, Any]:
    """The record of one rank count: repeats summarised, the median repeat's per-rank detail."""
    times = [r["time_s"] for r in runs]
    t = summary(times)
    med = sorted(runs, key=lambda r: r["time_s"])[len(runs) // 2]
    phases = {}
    for key in ("read_s", "compute_s", "reduce_s", "checkpoint_s", "output_s"):
        phases[key[:-2]] = float(np.median([r[key] for r in runs]))
    phases["idle_max"] = float(np.median([max(r["rank_idle_s"]) for r in runs]))
    named = sum(phases[k] for k in ("read", "compute", "reduce", "checkpoint", "output"))
    phases["other"] = max(0.0, t["median"] - named)
    itemsize = np.dtype(med["dtype"]).itemsize
    data_bytes = 0 if med["input"].startswith("range:") else med["rows"] * int(np.prod(med["row_shape"])) * itemsize
    processed = data_bytes * med["passes"]
    point: dict[str, Any] = {
        "ranks": p,
        "nodes": facts["nodes"],
        "ranks_per_node": facts["ranks_per_node"],
        "cores_per_node": facts["cores_per_node"],
        "hostnames": facts["hostnames"],
        "oversubscribed": facts["oversubscribed"],
        "rows": med["rows"], "data_bytes": data_bytes, "passes": med["passes"], "bytes_processed": processed,
        "shards": med["shards"], "shard_rows": med["shard_rows"], "schedule": med["schedule"],
        "input": med["input"],
        "time_s": t,
        "runtime_elapsed_s": summary([r["runtime_elapsed_s"] for r in runs]),
        "warmup_s": [w["time_s"] for w in warm],
        "compile_s": warm[0]["compile_s"] if warm else None,
        "phases_s": phases,
        "checkpoints": med["checkpoints"],
        "foreign_cpu_s": summary([r["foreign_cpu_s"] for r in runs]),
        "disturbed_runs": sum(bool(r["disturbed"]) for r in runs),
        "disturbed": any(r["disturbed"] for r in runs),
        "rank": {"shards": med["rank_shards"], "busy_s": med["rank_busy_s"], "idle_s": med["rank_idle_s"],
                 "steals": med["rank_steals"]},
        "imbalance": imbalance(med["rank_busy_s"]),
        "rows_per_s": med["rows"] / t["median"],
        "GBps": data_bytes / t["median"] / 1e9 if data_bytes else None,
        "kernel_GBps_per_rank": (processed / p / phases["compute"] / 1e9) if processed and phases["compute"] > 0
        else None,
        "result_sha256": med["result_sha256"],
        "results_identical_across_repeats": len({r["result_sha256"] for r in runs + warm}) == 1,
    }
    if stream is not None:
        point["memory_bandwidth"] = stream
        bw = stream["read"]["per_rank_GBps"]
        point["kernel_fraction_of_memory_bandwidth"] = (point["kernel_GBps_per_rank"] / bw
                                                        if point["kernel_GBps_per_rank"] else None)
    if allred is not None:
        point["allreduce"] = allred
    return point


def study(opts: StudyOptions, comm, say=None) -> dict[str, Any] | None:
    """Every rank of ``comm``: run the study; rank 0 returns the record (others None)."""
    from hpcdist.comm import World
    from hpcdist.job import load_job
    from hpcdist.params import resolve_params

    rank = comm.Get_rank()
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    lead = (lambda text: say(text)) if rank == 0 else (lambda text: None)
    w = World(comm)
    w.agree(lambda: load_job(opts.job_path) and None)
    job = load_job(opts.job_path)
    kind, plans = w.agree(lambda: _plan(opts, job, comm.Get_size()))
    machine_load = quiet.start_load(opts.max_load, opts.wait_quiet, opts.wait_load, say) if rank == 0 else None
    _make_data(opts, kind, plans, comm, say)
    params = resolve_params(job.params, opts.params, job.name)
    start_date = machine.now_utc()
    launch = machine.launch_facts(comm, opts.cores)
    tmp = comm.bcast(tempfile.mkdtemp(prefix=".bench-tmp-", dir=opts.out) if rank == 0 else None, root=0)
    subs = _sub_worlds(comm, [p for p, _, _ in plans])
    facts = {p: (machine.launch_facts(s, opts.cores) if s is not None else None) for p, s in subs.items()}
    try:
        warm, stream_at, allred_at = _warm_up_and_limits(opts, job, plans, subs, comm, tmp, lead)
        runs, loads = _timed_rounds(opts, job, plans, subs, comm, tmp, lead)
    finally:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
    for sub in subs.values():
        if sub is not None:
            sub.Free()
    if rank != 0:
        return None
    points = [point_from_runs(p, facts[p], warm[p], runs[p], stream_at.get(p), allred_at.get(p)) for p in subs]
    return _record(opts, job, kind, params, points, start_date, launch, machine_load, loads)


def _plan(opts: StudyOptions, job, size: int) -> tuple[str, list[tuple[int, str, int]]]:
    """Rank 0: the data kind and, per rank count, (ranks, input spec, rows); bad options are UserErrors."""
    from hpcdist.params import resolve_params

    too_big = [p for p in opts.ranks if p > size]
    if too_big:
        raise UserError(f"--ranks {','.join(map(str, too_big))}: more than the {size} rank(s) launched; launch "
                        f"with mpiexec -n {max(too_big)} (hpcdist bench report composes separate launches)")
    if opts.repeat < 1 or opts.warmup < 0:
        raise UserError(f"--repeat must be >= 1 and --warmup >= 0, got {opts.repeat}, {opts.warmup}")
    params = resolve_params(job.params, opts.params, job.name)
    kind = data_kind(job, params, opts.data)
    try:
        os.makedirs(opts.out, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {opts.out}: cannot create the directory ({exc.strerror})") from None
    plans = []
    for p in opts.ranks:
        if opts.kind == "strong" and opts.input:
            plans.append((p, opts.input, 0))
            continue
        rows = opts.rows if opts.kind == "strong" else opts.rows_per_rank * p
        if rows is None or rows < 1:
            raise UserError("--rows must be >= 1" if opts.kind == "strong" else "--rows-per-rank must be >= 1")
        plans.append((p, input_spec(kind, rows, opts.cols, opts.data_dir), rows))
    return kind, plans


def _make_data(opts: StudyOptions, kind: str, plans: list[tuple[int, str, int]], comm, say) -> None:
    """The data, made once by rank 0 (the others sleep meanwhile); a failure ends every rank alike."""
    failure = None
    if comm.Get_rank() == 0 and kind == "h5" and not opts.input:
        try:
            for _, spec, rows in plans:
                ensure_h5(spec, rows, opts.cols, say)
        except (UserError, OSError) as exc:
            failure = str(exc)
    quiet_barrier(comm)
    failure = comm.bcast(failure, root=0)
    if failure:
        raise UserError(failure, agreed=True)


def _sub_worlds(comm, counts: list[int]) -> dict[int, Any]:
    """A sub-communicator of the first p ranks for every rank count p (None on the ranks left out)."""
    from mpi4py import MPI

    subs: dict[int, Any] = {}
    for p in counts:
        sub = comm.Split(0 if comm.Get_rank() < p else MPI.UNDEFINED, comm.Get_rank())
        subs[p] = sub if sub != MPI.COMM_NULL else None
    return subs


def _run_options(opts: StudyOptions, spec: str, p: int, tmp: str):
    from hpcdist.options import CHECKPOINT_EVERY_S, RunOptions

    return RunOptions(input=spec, output=None, params=dict(opts.params), shard_rows=opts.shard_rows,
                      checkpoint=(os.path.join(tmp, f"ckpt-p{p}.h5") if opts.checkpoint_every else None),
                      checkpoint_every=opts.checkpoint_every or CHECKPOINT_EVERY_S, schedule=opts.schedule)


def _warm_up_and_limits(opts: StudyOptions, job, plans, subs, comm, tmp: str, lead):
    """Untimed runs (numba compiles or loads its cache, the file comes into the page cache), then
    the machine's limits at every rank count."""
    specs = {p: spec for p, spec, _ in plans}
    warm: dict[int, list] = {p: [] for p in subs}
    for p, sub in subs.items():
        for _ in range(opts.warmup):
            lead(f"hpcdist bench: {opts.kind} {job.name}: warm-up at {p} rank(s)")
            if sub is not None:
                warm[p].append(one_run(job, _run_options(opts, specs[p], p, tmp), sub, tmp))
            quiet_barrier(comm)
    stream_at, allred_at = {}, {}
    if opts.limits:
        for p, sub in subs.items():
            lead(f"hpcdist bench: memory bandwidth and allreduce at {p} rank(s)")
            if sub is not None:
                stream_at[p] = limits.stream(sub, opts.stream_mib)
                allred_at[p] = limits.allreduce(sub)
            quiet_barrier(comm)
    return warm, stream_at, allred_at


def _timed_rounds(opts: StudyOptions, job, plans, subs, comm, tmp: str, lead):
    """``--repeat`` rounds, rank counts interleaved (rotating order); each run notes the CPU time
    other programs used meanwhile."""
    specs = {p: spec for p, spec, _ in plans}
    runs: dict[int, list] = {p: [] for p in subs}
    loads = []
    order = list(subs)
    for r in range(opts.repeat):
        loads.append(quiet.loadavg())
        for p in order[r % len(order):] + order[: r % len(order)]:
            sub = subs[p]
            before = comm.gather(quiet.snapshot(), root=0)
            res = one_run(job, _run_options(opts, specs[p], p, tmp), sub, tmp) if sub is not None else {}
            quiet_barrier(comm)
            after = comm.gather(quiet.snapshot(), root=0)
            if res:
                others = quiet.others_cpu_s(before, after)
                res.update(foreign_cpu_s=others["foreign_cpu_s"], disturbed=others["disturbed"])
                runs[p].append(res)
                lead(f"hpcdist bench: round {r + 1}/{opts.repeat}: {p} rank(s): {res['time_s']:.3f} s "
                     f"(read {res['read_s']:.3f}, compute {res['compute_s']:.3f}, reduce {res['reduce_s']:.4f})"
                     + (f"; disturbed: others used {res['foreign_cpu_s']:.2f} cpu-s" if res["disturbed"] else ""))
    return runs, loads


def _record(opts: StudyOptions, job, kind: str, params, points, start_date, launch, machine_load, loads
            ) -> dict[str, Any]:
    """The study's JSON record (schema in benchmarks/README.md)."""
    from hpcdist.params import params_json

    digests = {pt["result_sha256"] for pt in points}
    return {
        "schema": SCHEMA_ID,
        "kind": opts.kind,
        "job": job.name,
        "job_path": machine.display_path(job.path),
        "job_sha256": job.source_sha256,
        "params": params_json(params),
        "data": {"kind": "given" if opts.input else kind, "cols": opts.cols,
                 "rows": opts.rows if opts.kind == "strong" else None,
                 "rows_per_rank": opts.rows_per_rank if opts.kind == "weak" else None,
                 "input": opts.input},
        "options": {"repeat": opts.repeat, "warmup": opts.warmup, "schedule": opts.schedule,
                    "shard_rows": opts.shard_rows, "checkpoint_every": opts.checkpoint_every,
                    "ranks": opts.ranks, "stream_mib": opts.stream_mib, "cores_override": opts.cores},
        "date": start_date,
        "date_end": machine.now_utc(),
        **machine.git_facts(),
        "machine": machine.describe(opts.cores),
        "launch": launch,
        "versions": machine.versions(),
        "loadavg_start": machine_load,
        "loadavg_per_round": loads,
        "loadavg_end": quiet.loadavg(),
        "quiet_at_start": bool(machine_load[0] <= opts.max_load) if opts.max_load > 0 else None,
        "waited_for_quiet": bool(opts.wait_quiet and opts.max_load > 0),
        "disturbed_points": [pt["ranks"] for pt in points if pt["disturbed"]],
        "same_bits_at_every_rank_count": (len(digests) == 1) if opts.kind == "strong" else None,
        "points": points,
    }
