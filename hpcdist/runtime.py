"""One run, top to bottom: check -> plan -> (resume) -> passes of map + reduce -> finalize -> output.

Every rank executes :func:`run` (SPMD). Input problems are decided on rank 0 and agreed by all
ranks before any other collective (:mod:`hpcdist.preflight`), so they end the run with one line
and exit code 2. The run's own messages (progress, stops, timings, the next pass's state) are
:mod:`hpcdist.control`'s; the checkpoint only makes rank 0's snapshot unions durable.
"""

from __future__ import annotations

import time
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

import hpcdist
from hpcdist import schedule
from hpcdist.checkpoint import CheckpointWriter, fingerprint
from hpcdist.comm import World
from hpcdist.context import ShardContext
from hpcdist.control import Cadence, Control, Interrupted
from hpcdist.errors import JobError, UserError, WriteFailed
from hpcdist.failures import display_path
from hpcdist.job import Job
from hpcdist.keyed.run import run_keyed
from hpcdist.options import RunOptions
from hpcdist.output import write_result
from hpcdist.params import params_json, resolve_params
from hpcdist.partials import LayoutCheck, Node, Partial, check_partial, decode, encode
from hpcdist.preflight import check_run, default_input
from hpcdist.progress import ProgressLine, Work, interval, report_interval
from hpcdist.record import RunFacts, RunOutcome, RunReport, run_attributes
from hpcdist.reduce import broadcast, reduce_to_root
from hpcdist.resume import CheckpointFinder, ResumePoint
from hpcdist.runlog import RunRecord, ShardLog, gather_hosts, gather_rows
from hpcdist.shards import plan_shards
from hpcdist.sinks import phases as rows_out
from hpcdist.signals import StopFlag, stop_on_signals
from hpcdist.sources import Source, open_source
from hpcdist.timings import RankProgress, RankTimings
from hpcdist.tree import Fold, shards_under
from hpcdist.warmup import warm_up

__all__ = ["Interrupted", "RunOptions", "RunReport", "run"]

MAX_PASSES = 10_000


def run(job: Job, options: RunOptions, world: World, stop: StopFlag | None = None) -> RunReport:
    """Run ``job`` on every rank of ``world``. With a checkpoint, SIGTERM/SIGINT/SIGUSR1 stop the
    run at the next safe point (``stop`` is the flag the caller's handlers set, if it installed
    them) and :class:`hpcdist.control.Interrupted` is raised on every rank."""
    start = world.synced_wtime()
    params = MappingProxyType(world.agree(lambda: resolve_params(job.params, options.params, job.name)))
    spec = options.input or default_input(job, params)
    seconds = world.agree(lambda: _check_and_pace(job, spec, options, params))   # progress: rank 0's tty
    options = replace(options, progress=False if seconds is None else seconds)
    source = open_source(spec, world.agree)   # many files: rank 0 reads their table, once
    nodes_in_world = world.nodes  # collective: every rank asks now, rank 0 records it later
    try:
        plan = plan_shards(source.rows, source.row_bytes, source.chunk_rows, options.shard_rows, job.keyed)
        facts = RunFacts(job, params, source, plan, world.size, nodes_in_world)
        fp = fingerprint(job, params_json(params), source.describe(), plan.shards, plan.shard_rows,
                         hpcdist.__version__)
        job, sink = rows_out.attach(job, options.output, source, plan, fp, bool(options.checkpoint))
        facts = replace(facts, job=job)
        finder = CheckpointFinder(options, fp)
        resume = world.agree(finder.find)
        if job.keyed:                                  # reduce by key: hpcdist/keyed/
            return run_keyed(facts, options, world, start, (fp, resume, finder.loaded), stop)
        world.agree(lambda: rows_out.check_resume(sink, resume.shards_done(plan.shards), finder.loaded))
        passes = _Passes(facts, options, world, resume, finder.loaded, fp, start, sink)
        if resume.complete:
            return passes.from_complete()
        if stop is not None:
            return passes.run(stop)
        with stop_on_signals(options.checkpoint is not None) as own:
            return passes.run(own)
    finally:
        source.close()


class _Passes:
    """The passes of one run on this rank. ``sink``: the rows this rank writes (hpcdist.sinks) for a
    job with OUTPUTS, else None."""

    def __init__(self, facts: RunFacts, options: RunOptions, world: World, resume: ResumePoint,
                 loaded: Any, fp: dict[str, Any], start: float, sink: Any = None) -> None:
        self.sink = sink
        self.facts, self.job, self.source, self.plan = facts, facts.job, facts.source, facts.plan
        self.options, self.world, self.resume, self.loaded, self.start = options, world, resume, loaded, start
        self.base = ShardContext(params=facts.params, rows=self.source.rows, row_shape=self.source.row_shape,
                                 dtype=self.source.dtype)
        self.timings = RankTimings()
        self.log = ShardLog(world.rank, time.perf_counter() - (world.wtime() - start))
        self.record = RunRecord()
        self.line: ProgressLine | None = None
        self.state: dict[str, np.ndarray] | None = None
        self.writer = (CheckpointWriter(options.checkpoint, fp, world.size, resume.generation)
                       if world.rank == 0 and options.checkpoint else None)

    def run(self, stop: StopFlag) -> RunReport:
        """Every pass; rank 0 returns the results and the output attributes."""
        self.state = self._initial_state()
        cadence = (Cadence(self.options.checkpoint_every, self.options.checkpoint_every_shards)
                   if self.options.checkpoint else None)
        writer = self._write_snapshot if self.writer is not None else None
        control = self._control(stop, cadence, writer)
        self.record.hosts = gather_hosts(self.world) or []
        for pass_index in range(self.resume.pass_index, MAX_PASSES):
            ctx = replace(self.base, pass_index=pass_index, state=self.state)
            self.timings.compile_s += warm_up(self.job, self.source, ctx).seconds   # no rank waits if cached
            root = self._one_pass(ctx, control)
            everyone = control.end_pass(self.timings)
            self.record.add_rows(gather_rows(self.world, self.log, control.waiting_poll))
            self.record.timings = everyone or []
            report = self._finish_pass(root, ctx, control, everyone)
            if report is not None:
                return report
            if writer is not None:
                control.begin_pass(pass_index + 1, list)
                control.checkpoint_now()
        raise UserError(f"job {self.job.name} did not finish in {MAX_PASSES} passes")

    def _control(self, stop: StopFlag, cadence: Cadence | None, writer: Any) -> Control:
        """The run's messages; with progress, counts on the line's cadence and rank 0's line."""
        seconds = self.options.progress if self.options.progress is not False else None
        if seconds is not None and self.world.rank == 0:
            plan, source = self.plan, self.source
            work = Work(plan.shards, plan.shard_rows, plan.rows, source.row_bytes, self.job.multipass)
            self.line = ProgressLine(work, float(seconds), lambda: control.progress().shards, label=self.job.name)
        watch = self.line.maybe_show if self.line is not None else None
        control = Control(self.world, stop, cadence, writer, report_interval(seconds, self.world.size), watch)
        return control

    def from_complete(self) -> RunReport:
        """A kept, complete checkpoint: the results without computing anything."""
        results, attrs, failed = None, {}, None
        if self.world.rank == 0:
            results = dict(self.loaded.results)
            attrs = self._attributes(0, [RankTimings()] * self.world.size, self.plan.shards)
            failed = self._write_output(results, attrs)
        if self.world.agree(lambda: failed) is not None:      # the others wait for rank 0's write here
            raise WriteFailed(failed or "", agreed=True)
        return RunReport(results=results, attrs=attrs, shards_here=0)

    def _initial_state(self) -> dict[str, np.ndarray] | None:
        if not self.job.multipass:
            return None
        value = None
        if self.world.rank == 0:
            if self.resume.has_state:
                value = self.loaded.state
            else:
                first = replace(self.base, sample=_sampler(self.source))
                value = check_partial(self.job.init(first), f"{self.job.name}.init")
        return dict(broadcast(self.world, value))

    def _one_pass(self, ctx: ShardContext, control: Control) -> Partial | None:
        job, plan, world, clock = self.job, self.plan, self.world, self.timings
        resumed_here = ctx.pass_index == self.resume.pass_index
        done = set(shards_under(self.resume.done, plan.shards)) if resumed_here else set()
        restored: list[Node] = list(self.loaded.nodes) if (resumed_here and self.loaded) else []
        todo = [s for s in range(plan.shards) if s not in done] if done else range(plan.shards)
        if done and world.rank == 0:
            self.log.add_resumed(ctx.pass_index, sorted(done))
        layouts = LayoutCheck(display_path(job.path), job.variable_length)   # fixed by the first partial
        fold = Fold(plan.shards, job.combine, layouts)
        if self.line is not None:
            self.line.begin_pass(ctx.pass_index, len(todo))
        control.begin_pass(ctx.pass_index, lambda: rows_out.synced(self.sink, fold.nodes + restored))
        buf = self.source.empty(min(plan.shard_rows, plan.rows))
        clock.schedule = schedule.resolve(self.options.schedule, world.size)
        started, busy = time.perf_counter(), 0.0
        shards_of = schedule.open_schedule(clock.schedule, todo, world.rank, world.size, world.comm, control.poll)
        try:
            for shard in shards_of:     # own block first; stolen tails (out of order) under dynamic
                control.poll()
                first_row, stop = plan.bounds(shard)
                t0 = time.perf_counter()
                data = self.source.read(first_row, stop, buf)
                t1 = time.perf_counter()
                shard_ctx = replace(ctx, index=shard, start=first_row, stop=stop)
                fold.add_leaf(shard, layouts.leaf(shard, job.map(data, shard_ctx), data))  # views copied
                t2 = time.perf_counter()
                self.log.add(ctx.pass_index, shard, t0, t1, t2, shards_of.steals > 0)
                clock.shards += 1
                clock.read_s += t1 - t0
                clock.compute_s += t2 - t1
                busy += t2 - t0
                control.after_shard(t2 - t0)
            shards_of.close(control.poll)     # every rank done mapping (ranks waiting keep polling)
            rows_out.sync(self.sink)          # written rows durable before this rank's partial leaves
        except BaseException:
            shards_of.abandon()
            raise
        clock.idle_s += time.perf_counter() - started - busy
        clock.claims += shards_of.claims
        clock.steals += shards_of.steals
        if restored:
            fold.merge(restored)
            restored.clear()
        t = time.perf_counter()
        root = reduce_to_root(world, fold, control.poll)
        clock.reduce_s += time.perf_counter() - t
        return root

    def _finish_pass(self, root: Partial | None, ctx: ShardContext, control: Control,
                     everyone: list[RankTimings] | None) -> RunReport | None:
        """Rank 0 decides (update, or finalize + output); every rank learns the next state.

        The output is written before the other ranks are released; if the write fails, every rank
        learns it and raises WriteFailed (one line, exit 1, no MPI_Abort). None: another pass.
        """
        results, attrs, failed = None, {}, None
        if self.world.rank == 0:
            done, new_state = self._decide(root, ctx)
            if done:
                results = _check_results(self.job, self.job.finalize(root, replace(ctx, state=new_state)))
                attrs = self._attributes(ctx.pass_index + 1, everyone or [], self.resume.shards_done(self.plan.shards))
                failed = self._deliver(results, attrs, control.progress())
            payload = {**(new_state or {}), "__done__": np.asarray(bool(done)),
                       "__failed__": np.asarray(failed is not None)}
            control.share_outcome(encode([(0, 0, payload)]))
        else:
            payload = dict(decode(control.receive_outcome())[0][2])
        done = bool(payload.pop("__done__"))
        if bool(payload.pop("__failed__")):
            raise WriteFailed(failed or "", agreed=True)    # rank 0 holds the message and prints it
        self.state = payload if self.job.multipass else None
        return RunReport(results=results, attrs=attrs, shards_here=self.timings.shards) if done else None

    def _decide(self, root: Partial | None, ctx: ShardContext) -> tuple[bool, dict[str, np.ndarray] | None]:
        """Rank 0: is the job done, and what is the next pass's state (multi-pass jobs)?"""
        if not self.job.multipass:
            return True, self.state
        new_state, done = self.job.update(self.state, root, ctx)
        new_state = dict(check_partial(new_state, f"{self.job.name}.update"))
        states = LayoutCheck(display_path(self.job.path), noun="state")
        states.check(self.state, f"pass {ctx.pass_index + 1}", "")
        states.check(new_state, f"pass {ctx.pass_index + 2}", "update returned")
        return bool(done), new_state

    def _deliver(self, results: dict[str, np.ndarray], attrs: dict[str, Any], progress: RankProgress
                 ) -> str | None:
        """Rank 0: the output file first, then the checkpoint is marked complete or removed.

        Returns the one-line reason when a file could not be written (the checkpoint then stays)."""
        failed = self._write_output(results, attrs)
        if failed or self.writer is None:
            return failed
        if not self.options.keep_checkpoint:
            self.writer.remove()
            return None
        try:
            self.writer.complete(results, progress)
        except WriteFailed as exc:
            return str(exc)
        return None

    def _write_output(self, results: dict[str, np.ndarray], attrs: dict[str, Any]) -> str | None:
        if self.line is not None:
            self.line.close()
        if not self.options.output:
            return None
        self.record.checkpoints = np.asarray(self.log.checkpoints, dtype=np.float64).reshape(-1, 2)
        record = self.record.datasets()
        try:
            rows_out.deliver(self.sink, self.options.output, lambda path: write_result(path, results, attrs, record))
        except WriteFailed as exc:
            return str(exc)
        return None

    def _write_snapshot(self, nodes: list[Node], pass_index: int, progress: RankProgress) -> bool:
        assert self.writer is not None
        t = time.perf_counter()
        try:
            return self.writer.snapshot(nodes, pass_index, progress, self.state)
        finally:
            self.log.add_checkpoint(t, time.perf_counter())

    def _attributes(self, passes: int, everyone: list[RankTimings], shards_resumed: int) -> dict[str, Any]:
        writer = self.writer
        return run_attributes(self.facts, RunOutcome(
            passes=passes, timings=everyone, elapsed_s=self.world.wtime() - self.start,
            shards_resumed=shards_resumed, checkpoint_s=writer.seconds if writer else 0.0,
            checkpoints=writer.writes if writer else 0))


def _check_and_pace(job: Job, spec: str, options: RunOptions, params: Mapping[str, Any]) -> float | None:
    """Rank 0: the run's checks, then the progress interval (rank 0's stderr decides "a terminal")."""
    check_run(job, spec, options, params)
    return interval(options.progress)


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
