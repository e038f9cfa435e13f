"""One run, top to bottom: validate -> plan -> (resume) -> passes of map + reduce -> finalize -> output.

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
from hpcdist import checkpoint as ckpt
from hpcdist.comm import World, mpi_library
from hpcdist.context import ShardContext
from hpcdist.errors import JobError, UserError, WriteFailed
from hpcdist.job import Job
from hpcdist.output import check_output_path, write_result
from hpcdist.params import params_json, resolve_params
from hpcdist.failures import display_path
from hpcdist.partials import LayoutCheck, Node, Partial, check_partial, decode, encode
from hpcdist.reduce import broadcast, reduce_to_root
from hpcdist import paths, schedule
from hpcdist.shards import ShardPlan, plan_shards
from hpcdist.allocation import slurm_attrs
from hpcdist.sources import Source, open_source
from hpcdist.tree import Fold, span

MAX_PASSES = 10_000
RESTART_MODES = ("auto", "fresh", "require")


@dataclass
class RunOptions:
    """What the user asked for; strings as typed, validated by :func:`run`."""

    input: str | None = None
    output: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    shard_rows: int | None = None
    checkpoint: str | None = None
    checkpoint_every: float = 60.0
    checkpoint_every_shards: int | None = None
    restart: str = "auto"
    keep_checkpoint: bool = False
    schedule: str = "auto"          # static | dynamic | auto (hpcdist/schedule/, docs/schedule.md)


@dataclass
class RunReport:
    """What a run did. ``results`` and ``attrs`` are filled on rank 0 only."""

    results: dict[str, np.ndarray] | None
    attrs: dict[str, Any]
    shards_here: int


@dataclass
class _Clock:
    shards: int = 0
    compile: float = 0.0
    read: float = 0.0
    compute: float = 0.0
    reduce: float = 0.0
    idle: float = 0.0       # in the map phase but not reading or computing (claiming, waiting for others)
    claims: int = 0
    steals: int = 0
    schedule: str = ""

    def row(self) -> tuple:
        return (self.shards, self.compile, self.read, self.compute, self.reduce, self.idle, self.claims,
                self.steals, self.schedule)


@dataclass
class _Resume:
    """Where a run starts: a pass, the shards already folded in it, and (rank 0) their nodes."""

    pass_index: int = 0
    done: list[tuple[int, int]] = field(default_factory=list)   # (level, index) of saved nodes
    complete: bool = False
    generation: int = 0
    has_state: bool = False


def run(job: Job, options: RunOptions, world: World, stop: ckpt.StopFlag | None = None) -> RunReport:
    """Run ``job`` on every rank of ``world``. With a checkpoint, SIGTERM/SIGINT/SIGUSR1 stop the
    run at the next safe point (``stop`` is the flag the caller's handlers set, if it installed
    them) and :class:`hpcdist.checkpoint.Interrupted` is raised on every rank."""
    start = world.synced_wtime()
    params = MappingProxyType(world.agree(lambda: resolve_params(job.params, options.params, job.name)))
    spec = options.input or _default_input(job, params)
    world.agree(lambda: _validate(job, spec, options, params))
    source = open_source(spec)
    nodes_in_world = world.nodes  # collective: every rank asks now, rank 0 records it later
    try:
        plan = plan_shards(source.rows, source.row_bytes, source.chunk_rows, options.shard_rows)
        base = ShardContext(params=params, rows=source.rows, row_shape=source.row_shape, dtype=source.dtype)
        fp = ckpt.fingerprint(job, params_json(params), source.describe(), plan.shards, plan.shard_rows,
                              hpcdist.__version__)
        saved: list[ckpt.Checkpoint] = []          # rank 0 only: the checkpoint resumed from
        resume = world.agree(lambda: _resume_point(options, fp, saved))
        if resume.complete:
            return _from_complete(job, saved, options, world, source, plan, params, nodes_in_world, start)
        def attrs_for(passes: int, timings: list[tuple], shards_resumed: int) -> dict[str, Any]:
            attrs = _attrs(job, params, source, plan, world, nodes_in_world, passes, timings,
                           elapsed=world.wtime() - start)
            attrs["shards_resumed"] = shards_resumed
            attrs["shards_computed"] = int(sum(t[0] for t in timings))
            return attrs

        run_ = _Run(job, options, world, source, plan, base, fp, resume, saved[0] if saved else None, attrs_for)
        if stop is not None:
            results, attrs = run_.passes(stop)
        else:
            with ckpt.stop_on_signals(options.checkpoint is not None) as own:
                results, attrs = run_.passes(own)
    finally:
        source.close()
    return RunReport(results=results, attrs=attrs, shards_here=run_.clock.shards)


class _Run:
    """The passes of one run on this rank, with progress reported to the checkpoint coordinator."""

    def __init__(self, job: Job, options: RunOptions, world: World, source: Source, plan: ShardPlan,
                 base: ShardContext, fp: dict, resume: _Resume, saved: ckpt.Checkpoint | None,
                 attrs_for: Any) -> None:
        self.job, self.options, self.world, self.source, self.plan = job, options, world, source, plan
        self.base, self.fp, self.resume, self.saved, self.attrs_for = base, fp, resume, saved, attrs_for
        self.clock = _Clock()
        self.state: dict[str, np.ndarray] | None = None
        self.generation = resume.generation
        self.shards_resumed = sum(b - a for a, b in (span(lv, ix, plan.shards) for lv, ix in resume.done))

    def passes(self, stop: ckpt.StopFlag) -> tuple[dict | None, dict[str, Any]]:
        """Run every pass; rank 0 returns the results and the output attributes."""
        job, world, options = self.job, self.world, self.options
        self.state = self._initial_state()
        self.clock.compile = _warm_up(job, self.source, self.plan, replace(self.base, state=self.state), world)
        policy = ckpt.Policy(every_s=options.checkpoint_every, every_shards=options.checkpoint_every_shards,
                             enabled=options.checkpoint is not None)
        writer = self._write_checkpoint if (world.rank == 0 and options.checkpoint) else None
        coord = ckpt.Coordinator(world, policy, stop, writer)
        for pass_index in range(self.resume.pass_index, MAX_PASSES):
            ctx = replace(self.base, pass_index=pass_index, state=self.state)
            root = self._one_pass(ctx, coord)
            timings = coord.end_pass(self.clock.row())
            done, results, attrs = self._finish_pass(root, ctx, coord, timings)
            if done:
                return results, attrs
            if writer is not None:
                coord.begin_pass(pass_index + 1, list)
                coord.checkpoint_now()
        raise UserError(f"job {job.name} did not finish in {MAX_PASSES} passes")

    def _initial_state(self) -> dict[str, np.ndarray] | None:
        if not self.job.multipass:
            return None
        if self.resume.has_state:
            value = self.saved.state if self.world.rank == 0 else None
        else:
            first = replace(self.base, sample=_sampler(self.source))
            value = check_partial(self.job.init(first), f"{self.job.name}.init") if self.world.rank == 0 else None
        return dict(broadcast(self.world, value))

    def _one_pass(self, ctx: ShardContext, coord: ckpt.Coordinator) -> Partial | None:
        job, plan, world, clock = self.job, self.plan, self.world, self.clock
        resumed_here = ctx.pass_index == self.resume.pass_index
        done = set()
        if resumed_here:
            for lv, ix in self.resume.done:
                done.update(range(*span(lv, ix, plan.shards)))
        restored: list[Node] = list(self.saved.nodes) if (resumed_here and self.saved) else []
        todo = [s for s in range(plan.shards) if s not in done] if done else range(plan.shards)
        layouts = LayoutCheck(display_path(job.path), job.variable_length)   # fixed by the first partial
        fold = Fold(plan.shards, job.combine, layouts)
        coord.begin_pass(ctx.pass_index, lambda: fold.nodes + restored)
        buf = self.source.empty(min(plan.shard_rows, plan.rows))
        clock.schedule = schedule.resolve(self.options.schedule, world.size)
        started, busy = time.perf_counter(), 0.0
        shards_of = schedule.open_schedule(clock.schedule, todo, world.rank, world.size, world.comm, coord.poll)
        try:
            for shard in shards_of:     # own block first; stolen tails (out of order) under dynamic
                coord.poll()
                first_row, stop = plan.bounds(shard)
                t0 = time.perf_counter()
                data = self.source.read(first_row, stop, buf)
                t1 = time.perf_counter()
                shard_ctx = replace(ctx, index=shard, start=first_row, stop=stop)
                fold.add_leaf(shard, layouts.leaf(shard, job.map(data, shard_ctx), data))  # views copied
                t2 = time.perf_counter()
                clock.shards += 1
                clock.read += t1 - t0
                clock.compute += t2 - t1
                busy += t2 - t0
                coord.after_shard(t2 - t0)
            shards_of.close(coord.poll)     # every rank done mapping (ranks waiting keep polling)
        except BaseException:
            shards_of.abandon()
            raise
        clock.idle += time.perf_counter() - started - busy
        clock.claims += shards_of.claims
        clock.steals += shards_of.steals
        if restored:
            fold.merge(restored)
            restored.clear()
        t = time.perf_counter()
        root = reduce_to_root(world, fold, coord.poll)
        clock.reduce += time.perf_counter() - t
        return root

    def _finish_pass(self, root: Partial | None, ctx: ShardContext, coord: ckpt.Coordinator,
                     timings: list[tuple] | None) -> tuple[bool, dict | None, dict[str, Any]]:
        """Rank 0 decides (update, or finalize + output); every rank learns the next state.

        The output is written before the other ranks are released; if the write fails, every rank
        learns it and raises WriteFailed (one line, exit 1, no MPI_Abort).
        """
        results, attrs, failed = None, {}, None
        if self.world.rank == 0:
            done, new_state = True, self.state
            if self.job.multipass:
                new_state, done = self.job.update(self.state, root, ctx)
                new_state = dict(check_partial(new_state, f"{self.job.name}.update"))
                states = LayoutCheck(display_path(self.job.path), noun="state")
                states.check(self.state, f"pass {ctx.pass_index + 1}", "")
                states.check(new_state, f"pass {ctx.pass_index + 2}", "update returned")
            if done:
                final_ctx = replace(ctx, state=new_state)
                results = _check_results(self.job, self.job.finalize(root, final_ctx))
                attrs = self.attrs_for(ctx.pass_index + 1, timings, self.shards_resumed)
                failed = self._deliver(results, attrs, coord)
            payload = {**(new_state or {}), "__done__": np.asarray(bool(done)),
                       "__failed__": np.asarray(failed is not None)}
            coord.send_result(encode([(0, 0, payload)]))
        else:
            payload = dict(decode(coord.wait_result())[0][2])
        done = bool(payload.pop("__done__"))
        if bool(payload.pop("__failed__")):
            raise WriteFailed(failed or "", agreed=True)    # rank 0 holds the message and prints it
        self.state = payload if self.job.multipass else None
        return done, results, attrs

    def _deliver(self, results: dict[str, np.ndarray], attrs: dict[str, Any], coord: ckpt.Coordinator
                 ) -> str | None:
        """Rank 0: the output file first, then the checkpoint is marked complete or removed.

        Returns the one-line reason when a file could not be written (the checkpoint then stays)."""
        path = self.options.checkpoint
        if self.options.output:
            try:
                write_result(self.options.output, results, attrs)
            except WriteFailed as exc:
                return str(exc)
        if path and self.options.keep_checkpoint:
            self.generation += 1
            ranks, busy = coord.progress()
            try:
                ckpt.save(path, ckpt.Checkpoint(fingerprint=self.fp, pass_index=0, nodes=[], complete=True,
                                                results=results, generation=self.generation,
                                                ranks=self.world.size, rank_shards=ranks, rank_busy_s=busy))
            except OSError as exc:
                return f"cannot write checkpoint {path}: {exc.strerror or exc}"
        elif path:
            ckpt.remove(path)
        return None

    def _write_checkpoint(self, nodes: list[Node], pass_index: int, ranks: list[int], busy: list[float]) -> bool:
        """Rank 0's writer for the coordinator: never fails the run, reports and keeps going."""
        self.generation += 1
        snapshot = ckpt.Checkpoint(fingerprint=self.fp, pass_index=pass_index, nodes=nodes,
                                   state=self.state, generation=self.generation, ranks=self.world.size,
                                   rank_shards=ranks, rank_busy_s=busy, allocation=slurm_attrs())
        try:
            ckpt.save(self.options.checkpoint, snapshot)
            return True
        except OSError as exc:
            print(f"hpcdist: warning: checkpoint not written to {self.options.checkpoint}: {exc}; "
                  f"the previous generation stays valid", file=sys.stderr, flush=True)
            return False


def _default_input(job: Job, params: Mapping[str, Any]) -> str:
    if job.default_input is None:
        raise UserError(f"job {job.name} has no default input: give --input FILE.h5:/dataset")
    return job.default_input(params)


def _validate(job: Job, spec: str, options: RunOptions, params: Mapping[str, Any]) -> None:
    """Rank 0 opens the input once and checks everything a user could have got wrong."""
    with open_source(spec) as source:
        files = getattr(source, "files", None)      # every file the input reads, links included
        paths.refuse_overlaps(spec, files() if files else [], options.output, options.checkpoint)
        paths.refuse_foreign(options.output, options.checkpoint)
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
    if options.checkpoint:
        check_output_path(options.checkpoint, what="checkpoint")
        if not options.checkpoint_every > 0:
            raise UserError(f"--checkpoint-every must be > 0 seconds, got {options.checkpoint_every}")
        if options.checkpoint_every_shards is not None and options.checkpoint_every_shards < 1:
            raise UserError(f"--checkpoint-every-shards must be >= 1, got {options.checkpoint_every_shards}")
    schedule.resolve(options.schedule, 1)   # one line and exit 2 for an unknown --schedule
    if options.restart not in RESTART_MODES:
        raise UserError(f"--restart must be one of {', '.join(RESTART_MODES)}, got {options.restart!r}")
    if options.restart != "auto" and not options.checkpoint:
        raise UserError(f"--restart={options.restart} needs --checkpoint PATH")


def _resume_point(options: RunOptions, fp: dict, saved: list) -> _Resume:
    """Rank 0: find, verify and describe the checkpoint to resume from (or none)."""
    path = options.checkpoint
    if not path:
        return _Resume()
    if options.restart == "fresh":
        ckpt.remove(path)
        return _Resume()
    found, warnings = ckpt.load(path)
    for warning in warnings:
        print(f"hpcdist: warning: {warning}", file=sys.stderr, flush=True)
    if found is None:
        if options.restart == "require":
            raise UserError(f"--restart=require: there is no checkpoint at {path}")
        return _Resume()
    diffs = ckpt.differences(found.fingerprint, fp)
    if diffs:
        raise UserError(f"checkpoint {path} belongs to another run: {'; '.join(diffs)} "
                        f"(use --restart=fresh to start over)")
    saved.append(found)
    what = "complete" if found.complete else f"{found.shards_done():,} of {found.shards:,} shards done"
    in_pass = f" in pass {found.pass_index + 1}" if found.state is not None else ""
    print(f"hpcdist: resuming from {path}: {what}{in_pass} (generation {found.generation}, "
          f"written {found.written_utc} by {found.ranks} rank(s))", file=sys.stderr, flush=True)
    return _Resume(pass_index=found.pass_index, done=[(lv, ix) for lv, ix, _ in found.nodes],
                   complete=found.complete, generation=found.generation, has_state=found.state is not None)


def _from_complete(job, saved, options, world, source, plan, params, nodes_in_world, start) -> RunReport:
    """A kept, complete checkpoint: the results without recomputing anything."""
    results, attrs, failed = None, {}, None
    if world.rank == 0:
        results = dict(saved[0].results)
        attrs = _attrs(job, params, source, plan, world, nodes_in_world, 0, [(0, 0.0, 0.0, 0.0, 0.0)] * world.size,
                       elapsed=world.wtime() - start)
        attrs["shards_resumed"], attrs["shards_computed"] = plan.shards, 0
        if options.output:
            try:
                write_result(options.output, results, attrs)
            except WriteFailed as exc:
                failed = str(exc)
    if world.agree(lambda: failed) is not None:      # the others wait for rank 0's write here
        raise WriteFailed(failed or "", agreed=True)
    return RunReport(results=results, attrs=attrs, shards_here=0)


def _warm_up(job: Job, source: Source, plan: ShardPlan, base: ShardContext, world: World) -> float:
    """Compile the job's kernels on a tiny shard, one rank per node first, so the others load
    numba's cache instead of all compiling the same kernel at once. Returns this rank's seconds."""
    rows = min(plan.rows, 16)
    tiny = source.read(0, rows, source.empty(rows))
    ctx = replace(base, index=0, start=0, stop=rows)
    elapsed = 0.0
    for turn in (0, 1):
        if (world.node_rank == 0) == (turn == 0):
            t = time.perf_counter()
            job.map(tiny, ctx)
            elapsed = time.perf_counter() - t
        if world.node_size > 1:
            world.node_comm.Barrier()
    return elapsed


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
        raise JobError(f"{display_path(job.path)}: finalize must return a dict of arrays, "
                       f"got {type(results).__name__}")
    return {str(k): np.asarray(v) for k, v in results.items()}


def _attrs(job: Job, params: Mapping[str, Any], source: Source, plan: ShardPlan, world: World,
           nodes: int, passes: int, timings: list[tuple], elapsed: float) -> dict[str, Any]:
    shards, compile_s, read_s, compute_s, reduce_s, *more = (list(col) for col in zip(*timings))
    idle_s, claims, steals, schedules = more if more else ([0.0] * len(shards), [0] * len(shards),
                                                           [0] * len(shards), ["none"] * len(shards))
    return {
        "job": job.name,
        "job_path": job.path,
        "job_sha256": job.source_sha256,
        "params": params_json(params),
        "input": source.spec,
        "rows": source.rows,
        "row_shape": list(source.row_shape) or [1],
        "dtype": source.dtype.str,
        "stored_dtype": source.stored_dtype.str,   # as in the file; "conversion" says how it became dtype
        "conversion": source.conversion,
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
        "rank_shards": [int(s) for s in shards],
        "rank_busy_s": [r + c for r, c in zip(read_s, compute_s)],
        "rank_idle_s": [float(s) for s in idle_s],
        "rank_claims": [int(s) for s in claims],
        "rank_steals": [int(s) for s in steals],
        "schedule": str(schedules[0]),
        "hostname": socket.gethostname(),
        "mpi": mpi_library(),
        "python": sys.version.split()[0],
        "hpcdist_version": hpcdist.__version__,
        **slurm_attrs(),  # SLURM_JOB_ID, SLURM_RESTART_COUNT, ... inside an allocation, else nothing
    }
