"""The keyed pass, top to bottom: map (any schedule) -> fold per key -> shuffle -> finalize -> write.

1. Each rank maps its shards (static or dynamic schedule) with ``map_keyed`` and folds the keyed
   leaves into O(log S) tree nodes (:class:`hpcdist.tree.Fold` with the keyed merge). With
   ``--checkpoint`` these nodes are the snapshots (:mod:`hpcdist.control`), and a resumed run
   (any rank count) maps only the shards the checkpoint lacks; rank 0 merges the saved nodes. A
   kill after the map phase redoes the shuffle and the write: the output appears atomically, once.
2. A bad key on any rank (``UserError`` from map_keyed) is agreed after the map phase: the lowest
   shard's message, one line, exit 2 on every rank.
3. Splitters from a sample of every rank's keys; the node slices go to their owners in bounded
   ``Alltoallv`` rounds (:mod:`.shuffle`); each owner folds what it got over the same tree.
4. Each owner finalizes its (sorted) keys and writes them at their offset in the result file.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

import numpy as np
from mpi4py import MPI

from hpcdist import schedule
from hpcdist.checkpoint import CheckpointWriter
from hpcdist.comm import World
from hpcdist.control import Cadence, Control
from hpcdist.context import ShardContext
from hpcdist.errors import JobError, UserError
from hpcdist.failures import display_path
from hpcdist.keyed.fold import KEYS, Keyed, empty_like, fold_nodes, keyed_combine, keyed_leaf, rehearse
from hpcdist.keyed.partition import SAMPLES_PER_RANK, fixed_sample, local_sample, splitters
from hpcdist.keyed.rounds import DEFAULT_ROUND_BYTES
from hpcdist.keyed.shuffle import ShuffleStats, shuffle
from hpcdist.keyed.write import agree_layout, write_keyed
from hpcdist.memory import keep_freed_memory
from hpcdist.options import RunOptions
from hpcdist.partials import encode
from hpcdist.progress import ProgressLine, Work, report_interval
from hpcdist.record import RunFacts, RunOutcome, RunReport, run_attributes
from hpcdist.resume import ResumePoint
from hpcdist.runlog import RunRecord, ShardLog, gather_hosts, gather_rows
from hpcdist.signals import StopFlag, stop_on_signals
from hpcdist.timings import RankTimings
from hpcdist.tree import Fold, height, shards_under
from hpcdist.warmup import warm

ROUND_BYTES_ENV = "HPCDIST_SHUFFLE_ROUND_BYTES"


def round_bytes() -> int:
    """The most bytes one shuffle round moves per rank (env ``HPCDIST_SHUFFLE_ROUND_BYTES``)."""
    text = os.environ.get(ROUND_BYTES_ENV, "")
    try:
        value = int(text) if text else DEFAULT_ROUND_BYTES
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"{ROUND_BYTES_ENV} must be a positive number of bytes, got {text!r}", agreed=True)
    return value


def run_keyed(facts: RunFacts, options: RunOptions, world: World, start: float,
              saved: tuple[dict[str, Any], ResumePoint, Any], stop: StopFlag | None) -> Any:
    """One keyed run on every rank; rank 0 returns the results (without --output) and attributes.

    ``saved``: the run's fingerprint, where it resumes and (rank 0) the loaded checkpoint."""
    if facts.job.multipass:
        raise UserError(f"{facts.job.name}: a keyed job (map_keyed) has one pass: init/update are not "
                        f"supported with it", agreed=True)
    if options.checkpoint and options.keep_checkpoint:
        raise UserError(f"{facts.job.name}: --keep-checkpoint is not supported for keyed jobs (map_keyed): "
                        f"their results live on every rank, not in the checkpoint", agreed=True)
    keep_freed_memory()                 # merges of big partials reuse their temporaries' pages
    if stop is not None:
        return _run(facts, options, world, start, saved, stop)
    with stop_on_signals(options.checkpoint is not None) as own:
        return _run(facts, options, world, start, saved, own)


def _run(facts: RunFacts, options: RunOptions, world: World, start: float,
         saved: tuple[dict[str, Any], ResumePoint, Any], stop: StopFlag) -> RunReport:
    job = facts.job
    fp, resume, loaded = saved
    rounds_limit = round_bytes()
    base = ShardContext(params=facts.params, rows=facts.source.rows, row_shape=facts.source.row_shape,
                        dtype=facts.source.dtype)
    clock = RankTimings()
    log = ShardLog(world.rank, time.perf_counter() - (world.wtime() - start))
    record = RunRecord(hosts=gather_hosts(world) or [])
    merge = keyed_combine(job.combine)
    template = _warm_up(facts, base, clock, merge)
    writer = (CheckpointWriter(options.checkpoint, fp, world.size, resume.generation)
              if world.rank == 0 and options.checkpoint else None)
    cadence = Cadence(options.checkpoint_every, options.checkpoint_every_shards) if options.checkpoint else None
    line, control = _control(facts, options, world, stop, cadence, _snapshots(writer, log) if writer is not None else None)
    restored = list(loaded.nodes) if loaded is not None else []
    fold, failure = _map_phase(facts, options, world, base, merge, clock, control, resume, restored, log, line)
    if line is not None:
        line.close()
    _agree_failure(world, failure)
    if restored:
        fold.merge(restored)
        restored.clear()                # the snapshots' view: merged nodes only, counted once
    everyone = control.end_pass(clock)
    record.add_rows(gather_rows(world, log, control.waiting_poll))
    record.timings = everyone or []
    record.checkpoints = np.asarray(log.checkpoints, dtype=np.float64).reshape(-1, 2)
    _end_control(world, control)
    t = time.perf_counter()
    nodes = fold.nodes
    cuts = _cuts(world.comm, nodes, facts.plan.shards)
    got, stats = shuffle(world.comm, nodes, cuts, rounds_limit)
    del nodes, fold
    mine = fold_nodes(got, facts.plan.shards, merge)
    template = _agree_template(world, template, mine)
    partial = mine if mine is not None else empty_like(template)
    clock.reduce_s += time.perf_counter() - t
    results = _finalize(job, partial, replace(base, state=None))
    layout = agree_layout(world.comm, results, display_path(job.path))
    nkeys = world.comm.allreduce(len(partial[KEYS]))
    attrs = run_attributes(facts, RunOutcome(
        passes=1, timings=everyone or [clock], elapsed_s=world.wtime() - start,
        shards_resumed=resume.shards_done(facts.plan.shards),
        checkpoint_s=writer.seconds if writer else 0.0, checkpoints=writer.writes if writer else 0))
    attrs.update(_shuffle_attrs(world, stats, nkeys, rounds_limit))
    gathered = None
    if options.output:
        identity = {"job": job.source_sha256, "params": attrs["params"], "input": attrs["input"],
                    "run": world.comm.bcast(os.urandom(8).hex(), root=0)}   # this run's own temp file
        write_keyed(world.comm, options.output, results, layout, attrs, identity,
                    record.datasets() if world.rank == 0 else {})
    else:
        gathered = _gather(world.comm, results)
    if writer is not None:
        writer.remove()                 # the output is in place: the checkpoint has done its work
    return RunReport(results=gathered, attrs=attrs if world.rank == 0 else {}, shards_here=clock.shards)


def _snapshots(writer: CheckpointWriter, log: ShardLog) -> Any:
    def write(nodes: list, pass_index: int, progress: Any) -> bool:
        t = time.perf_counter()
        try:
            return writer.snapshot(nodes, pass_index, progress, None)
        finally:
            log.add_checkpoint(t, time.perf_counter())
    return write


def _control(facts: RunFacts, options: RunOptions, world: World, stop: StopFlag, cadence: Cadence | None,
             writer: Any) -> tuple[ProgressLine | None, Control]:
    """The run's messages and, on rank 0 with progress on, the progress line they feed."""
    seconds = options.progress if options.progress is not False else None   # rank 0's, agreed
    line = None
    if seconds is not None and world.rank == 0:
        plan, source = facts.plan, facts.source
        work = Work(plan.shards, plan.shard_rows, plan.rows, source.row_bytes, False)
        line = ProgressLine(work, float(seconds), lambda: control.progress().shards, label=facts.job.name)
    control = Control(world, stop, cadence, writer, report_interval(seconds, world.size),
                      line.maybe_show if line is not None else None)
    return line, control


def _end_control(world: World, control: Control) -> None:
    """Every rank passes this point together, with no control message left in flight."""
    if world.rank == 0:
        control.share_outcome(encode([(0, 0, {"done": np.asarray(True)})]))
    else:
        control.receive_outcome()


def _warm_up(facts: RunFacts, base: ShardContext, clock: RankTimings, merge: Any) -> Keyed | None:
    """Load or compile the kernels (map_keyed's, the merge's) on a tiny shard; its partial (no
    keys) is the layout of an owner without keys."""
    rows = min(facts.source.rows, 16)
    tiny = facts.source.read(0, rows, facts.source.empty(rows))
    ctx, got = replace(base, index=0, start=0, stop=rows), []
    t = time.perf_counter()
    try:       # every rank loads numba's cache at once; a miss takes turns (hpcdist.warmup)
        warm(lambda: got.insert(0, keyed_leaf(facts.job.map_keyed(tiny, ctx), "warm-up")))
        leaf = got[0]
        warm(lambda: rehearse(leaf, merge))
    except UserError:
        return None                     # the map phase meets the same rows and says so
    finally:
        clock.compile_s += time.perf_counter() - t
    return empty_like(leaf)


def _map_phase(facts: RunFacts, options: RunOptions, world: World, base: ShardContext, merge: Any,
               clock: RankTimings, control: Control, resume: ResumePoint, restored: list, log: ShardLog,
               line: ProgressLine | None) -> tuple[Fold, tuple[int, str] | None]:
    """Map every shard not in the checkpoint; rank 0's snapshots also hold the ``restored`` nodes.
    Every mapped shard is a row of ``log`` (the output's run record)."""
    job, plan, source = facts.job, facts.plan, facts.source
    fold = Fold(plan.shards, merge)
    done = set(shards_under(resume.done, plan.shards))
    todo = [s for s in range(plan.shards) if s not in done] if done else range(plan.shards)
    if done and world.rank == 0:
        log.add_resumed(0, sorted(done))
    if line is not None:
        line.begin_pass(0, len(todo))
    control.begin_pass(0, lambda: fold.nodes + restored)
    failure: tuple[int, str] | None = None
    buf = source.empty(min(plan.shard_rows, plan.rows))
    clock.schedule = schedule.resolve(options.schedule, world.size)
    shards_of = schedule.open_schedule(clock.schedule, todo, world.rank, world.size, world.comm, control.poll)
    where = display_path(job.path)
    started, busy = time.perf_counter(), 0.0
    try:
        for shard in shards_of:
            control.poll()
            if failure is not None:
                continue                # keep claiming (dynamic) so every rank ends the phase together
            first_row, stop = plan.bounds(shard)
            t0 = time.perf_counter()
            data = source.read(first_row, stop, buf)
            t1 = time.perf_counter()
            try:
                out = job.map_keyed(data, replace(base, index=shard, start=first_row, stop=stop))
            except UserError as exc:
                failure = (shard, str(exc))
                continue
            fold.add_leaf(shard, keyed_leaf(out, f"{where}: map_keyed (shard {shard})", data))
            t2 = time.perf_counter()
            log.add(0, shard, t0, t1, t2, shards_of.steals > 0)
            clock.shards += 1
            clock.read_s += t1 - t0
            clock.compute_s += t2 - t1
            busy += t2 - t0
            control.after_shard(t2 - t0)
        shards_of.close(control.poll)
    except BaseException:
        shards_of.abandon()
        raise
    clock.idle_s += time.perf_counter() - started - busy
    clock.claims += shards_of.claims
    clock.steals += shards_of.steals
    return fold, failure


def _agree_failure(world: World, failure: tuple[int, str] | None) -> None:
    """A bad input found by any rank ends every rank with the lowest shard's message."""
    nothing = (np.iinfo(np.int64).max, "")
    found = world.comm.allreduce(failure if failure is not None else nothing, op=MPI.MIN)   # the lowest shard
    if found != nothing:
        raise UserError(found[1], agreed=True)


def _cuts(comm: MPI.Intracomm, nodes: list, shards: int) -> np.ndarray:
    """Splitters from up to 64 keys of each node this rank holds, weighted by the node's key count
    (a key in two nodes counts twice: only the balance depends on it, never a result). Rank 0
    gathers a fixed-size sample from every rank up MPI's tree, picks the P - 1 splitters and
    broadcasts them: no rank but rank 0 holds more than its own sample and the splitters."""
    samples = [local_sample(n[2][KEYS]) for n in nodes]
    weights = [np.full(len(s), len(n[2][KEYS]) / max(1, len(s))) for s, n in zip(samples, nodes)]
    size = SAMPLES_PER_RANK * (height(shards) + 1)      # a rank's frontier: one node per level
    mine, weight = fixed_sample(np.concatenate(samples) if samples else np.zeros(0, np.int64),
                                np.concatenate(weights) if weights else np.zeros(0), size)
    rank, ranks = comm.Get_rank(), comm.Get_size()
    every = np.empty(size * ranks, np.int64) if rank == 0 else None
    every_weight = np.empty(size * ranks) if rank == 0 else None
    comm.Gather(mine, every, root=0)
    comm.Gather(weight, every_weight, root=0)
    return comm.bcast(splitters(every, every_weight, ranks) if rank == 0 else None, root=0)


def _agree_template(world: World, template: Keyed | None, mine: Keyed | None) -> Keyed:
    """The layout of an empty partial (an owner with no key): this rank's warm-up partial. Every
    rank has one once no bad key was found (the warm-up maps the first rows, which hold a key)."""
    if template is None and mine is not None:
        template = empty_like(mine)
    if template is None:
        raise JobError("map_keyed gave no partial on the first rows: no layout for an owner without keys")
    return template


def _finalize(job: Any, partial: Keyed, ctx: ShardContext) -> dict[str, np.ndarray]:
    keys = partial[KEYS]
    values = {name: arr for name, arr in partial.items() if name != KEYS}
    out = job.finalize(values, ctx)
    results = {"keys": keys}
    for name, arr in out.items():
        arr = np.asarray(arr)
        if arr.ndim < 1 or len(arr) != len(keys):
            raise JobError(f"{display_path(job.path)}: finalize result {name!r} must have one row per key "
                           f"({len(keys)}), got shape {arr.shape}")
        results[str(name)] = arr
    return results


def _shuffle_attrs(world: World, stats: ShuffleStats, nkeys: int, limit: int) -> dict[str, Any]:
    sent = world.comm.allreduce(stats.sent_bytes)
    most = world.comm.allreduce(stats.received_bytes, op=MPI.MAX)
    return {"keys": int(nkeys), "shuffle_rounds": stats.rounds, "shuffle_bytes": int(sent),
            "shuffle_max_received_bytes": int(most), "shuffle_round_bytes": int(limit)}


def _gather(comm: MPI.Intracomm, results: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Without --output: every owner's rows on rank 0, in rank (= key) order, to print."""
    parts = comm.gather(results, root=0)
    if parts is None:
        return None
    return {name: np.concatenate([p[name] for p in parts]) for name in results}
