"""One run, top to bottom: validate -> plan -> compile -> (passes of map + reduce) -> finalize -> output.

Every rank executes this same function (SPMD). Input problems are decided on rank 0 and agreed by
all ranks before any other collective, so they end the run with one message and exit code 2.
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

import hpcdist
from hpcdist.comm import World, mpi_library
from hpcdist.context import ShardContext
from hpcdist.errors import UserError
from hpcdist.job import Job
from hpcdist.output import check_output_path, write_result
from hpcdist.params import params_json, resolve_params
from hpcdist.partials import Partial, check_partial
from hpcdist.reduce import broadcast, reduce_to_root
from hpcdist.shards import ShardPlan, plan_shards
from hpcdist.sources import Source, open_source
from hpcdist.tree import Fold

MAX_PASSES = 10_000


@dataclass
class RunOptions:
    """What the user asked for; strings as typed, validated by :func:`run`."""

    input: str | None = None
    output: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    shard_rows: int | None = None


@dataclass
class RunReport:
    """What a run did. ``results`` and the ``*_max_s`` timings are filled on rank 0 only."""

    results: dict[str, np.ndarray] | None
    attrs: dict[str, Any]
    shards_here: int


@dataclass
class _Clock:
    compile: float = 0.0
    read: float = 0.0
    compute: float = 0.0
    reduce: float = 0.0


def run(job: Job, options: RunOptions, world: World) -> RunReport:
    start = world.synced_wtime()
    params = MappingProxyType(world.agree(lambda: resolve_params(job.params, options.params, job.name)))
    spec = options.input or _default_input(job, params)
    world.agree(lambda: _validate(job, spec, options, params))
    source = open_source(spec)
    nodes = world.nodes  # collective: every rank asks now, rank 0 records it later
    try:
        plan = plan_shards(source.rows, source.row_bytes, source.chunk_rows, options.shard_rows)
        mine = plan.block(world.rank, world.size)
        base = ShardContext(params=params, rows=source.rows, row_shape=source.row_shape, dtype=source.dtype)
        clock = _Clock()
        root, ctx, passes = _passes(job, source, plan, mine, base, world, clock)
    finally:
        source.close()

    results, attrs = None, {}
    if world.rank == 0:
        results = _check_results(job, job.finalize(root, ctx))
    timings = world.comm.gather((len(mine), clock.compile, clock.read, clock.compute, clock.reduce), root=0)
    if world.rank == 0:
        attrs = _attrs(job, params, source, plan, world, nodes, passes, timings,
                       elapsed=world.wtime() - start)
        if options.output:
            t = time.perf_counter()
            write_result(options.output, results, attrs)
            attrs["output_s"] = time.perf_counter() - t
    world.barrier()  # all ranks end together: a failed write on rank 0 aborts the others
    return RunReport(results=results, attrs=attrs, shards_here=len(mine))


def _default_input(job: Job, params: Mapping[str, Any]) -> str:
    if job.default_input is None:
        raise UserError(f"job {job.name} has no default input: give --input FILE.h5:/dataset")
    return job.default_input(params)


def _validate(job: Job, spec: str, options: RunOptions, params: Mapping[str, Any]) -> None:
    """Rank 0 opens the input once and checks everything a user could have got wrong."""
    with open_source(spec) as source:
        ndim = 1 + len(source.row_shape)
        if job.input_ndim is not None and source.row_shape != (0,) and ndim not in job.input_ndim:
            allowed = " or ".join(f"{n}-D" for n in job.input_ndim)
            raise UserError(f"{spec}: job {job.name} needs {allowed} data, got {ndim}-D shape "
                            f"{(source.rows, *source.row_shape)}")
        if job.check is not None:
            job.check(ShardContext(params=params, rows=source.rows, row_shape=source.row_shape,
                                   dtype=source.dtype))
    if options.shard_rows is not None and options.shard_rows < 1:
        raise UserError(f"--shard-rows must be >= 1, got {options.shard_rows}")
    if options.output:
        check_output_path(options.output)


def _warm_up(job: Job, source: Source, plan: ShardPlan, base: ShardContext, world: World) -> float:
    """Compile the job's kernels on a tiny shard, one rank per node first, so the others load
    numba's cache instead of all compiling the same kernel at once. Returns this rank's seconds."""
    rows = min(plan.rows, 16)
    tiny = source.read(0, rows, source.empty(rows))
    ctx = replace(base, index=0, start=0, stop=rows)
    node = world.node_comm
    elapsed = 0.0
    for turn in (0, 1):
        if (world.node_rank == 0) == (turn == 0):
            t = time.perf_counter()
            job.map(tiny, ctx)
            elapsed = time.perf_counter() - t
        if world.node_size > 1:
            node.Barrier()
    return elapsed


def _passes(job: Job, source: Source, plan: ShardPlan, mine: range, base: ShardContext,
            world: World, clock: _Clock) -> tuple[Partial | None, ShardContext, int]:
    """Map every shard of this rank and reduce, once, or until a multi-pass job's update is done."""
    state = None
    if job.multipass:
        first = replace(base, sample=_sampler(source))
        state = broadcast(world, job.init(first) if world.rank == 0 else None)
    clock.compile = _warm_up(job, source, plan, replace(base, state=state), world)
    buf = source.empty(min(plan.shard_rows, plan.rows))
    for pass_index in range(MAX_PASSES):
        ctx = replace(base, pass_index=pass_index, state=state)
        fold = Fold(plan.shards, job.combine)
        for shard in mine:
            first_row, stop = plan.bounds(shard)
            t0 = time.perf_counter()
            data = source.read(first_row, stop, buf)
            t1 = time.perf_counter()
            shard_ctx = replace(ctx, index=shard, start=first_row, stop=stop)
            fold.push_leaf(shard, check_partial(job.map(data, shard_ctx), f"{job.name}.map"))
            clock.read += t1 - t0
            clock.compute += time.perf_counter() - t1
        t = time.perf_counter()
        root = reduce_to_root(world, fold)
        clock.reduce += time.perf_counter() - t
        if not job.multipass:
            return root, ctx, 1
        verdict = None
        if world.rank == 0:
            new_state, done = job.update(state, root, ctx)
            verdict = {**check_partial(new_state, f"{job.name}.update"), "__done__": np.asarray(bool(done))}
        verdict = broadcast(world, verdict)
        done = bool(verdict.pop("__done__"))
        if done:
            return root, replace(ctx, state=verdict), pass_index + 1
        state = verdict
    raise UserError(f"job {job.name} did not finish in {MAX_PASSES} passes")


def _sampler(source: Source):
    """``ctx.sample(n, seed)``: n distinct rows chosen by the seed alone (not by rank count)."""
    def sample(n: int, seed: int) -> np.ndarray:
        rng = np.random.Generator(np.random.Philox(key=seed))
        n = min(n, source.rows)
        idx = np.sort(rng.choice(source.rows, size=n, replace=False)) if n < source.rows \
            else np.arange(source.rows)
        return source.take(idx)
    return sample


def _check_results(job: Job, results: object) -> dict[str, np.ndarray]:
    if not isinstance(results, Mapping):
        raise TypeError(f"{job.name}.finalize must return a dict of arrays, got {type(results).__name__}")
    return {str(k): np.asarray(v) for k, v in results.items()}


def _attrs(job: Job, params: Mapping[str, Any], source: Source, plan: ShardPlan, world: World,
           nodes: int, passes: int, timings: list[tuple], elapsed: float) -> dict[str, Any]:
    shards, compile_s, read_s, compute_s, reduce_s = (list(col) for col in zip(*timings))
    return {
        "job": job.name,
        "job_path": job.path,
        "job_sha256": job.source_sha256,
        "params": params_json(params),
        "input": source.spec,
        "rows": source.rows,
        "row_shape": list(source.row_shape) or [1],
        "dtype": source.dtype.str,
        "shards": plan.shards,
        "shard_rows": plan.shard_rows,
        "ranks": world.size,
        "nodes": nodes,
        "passes": passes,
        "elapsed_s": elapsed,
        "compile_s": max(compile_s),
        "read_s": max(read_s),
        "compute_s": max(compute_s),
        "reduce_s": max(reduce_s),
        "rank_shards": shards,
        "rank_busy_s": [r + c for r, c in zip(read_s, compute_s)],
        "hostname": socket.gethostname(),
        "mpi": mpi_library(),
        "python": sys.version.split()[0],
        "hpcdist_version": hpcdist.__version__,
    }
