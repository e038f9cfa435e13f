"""The passes of a job that writes rows, as an ordinary multi-pass job the runtime already runs.

Why a wrapper: the runtime's folds, checkpoints and resumes then cover written rows unchanged.
A writing job's passes are: its own passes (a multi-pass job, until its ``update`` says done),
then a *counting* pass if any output is a filter (``transform`` runs, only the number of rows per
shard is kept), then the *writing* pass (``transform`` and ``map`` run; ``finalize`` gets this
pass's partial). The per-shard row counts travel inside the partials (``__rows__``, in shard order,
whatever order shards finished in), so the counting pass's root is every shard's count; their
exclusive prefix sum, in shard order, places each shard's rows (state ``__places__``: O(shards)).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import replace
from typing import Any, Callable, Mapping

import numpy as np

from hpcdist.context import ShardContext
from hpcdist.errors import JobError, UserError
from hpcdist.job import Job
from hpcdist.partials import Node, check_partial, from_items, items
from hpcdist.sinks.rows import RowSink, temp_name

PHASE, PLACES, ROWS, OWN = "__phase__", "__places__", "__rows__", "j:"
JOB_PASSES, COUNTING, WRITING = 0, 1, 2
PROBE_ROWS = 16


def attach(job: Job, output: str | None, source: Any, plan: Any, fp: Mapping[str, Any], keep: bool = False
           ) -> tuple[Job, RowSink | None]:
    """``job`` unchanged (it writes nothing) or wrapped, with this rank's sink. ``keep``: a job
    bug leaves the rows written so far for a resume (with --checkpoint); else they are removed."""
    if not job.outputs:
        return job, None
    if not output:
        names = ", ".join(f"/{n}" for n in job.outputs)
        raise UserError(f"job {job.name} writes datasets ({names}): give --output FILE.h5",
                        agreed=True)      # every rank decides the same from the same options
    sink = RowSink(job.path, job.outputs, output, temp_name(output, fp), keep)
    sink.existed = os.path.exists(sink.temp)     # rank 0 looks before any rank can write
    return _Wrapped(job, sink, source, plan).job(), sink


def check_resume(sink: RowSink | None, shards_done: int, loaded: Any) -> None:
    """Rank 0, resuming: rows the checkpoint counts as written must still be there."""
    state = getattr(loaded, "state", None)
    if sink is None or not shards_done or not state or int(state.get(PHASE, -1)) != WRITING:
        return
    if not sink.existed:
        done = (f"; {sink.output} exists: if it is this run's complete output (a stop between its "
                f"rename and the checkpoint's removal), nothing is left to do" if os.path.exists(sink.output) else "")
        raise UserError(f"the checkpoint counts the rows of {shards_done:,} shards as written, but their "
                        f"file {sink.temp} is gone: resume with the same --output, or start over with "
                        f"--restart=fresh{done}")


def synced(sink: RowSink | None, nodes: list[Node]) -> list[Node]:
    """``nodes`` after this rank's rows are durable: a snapshot never reports rows not on disk."""
    if sink is not None:
        sink.sync()
    return nodes


def sync(sink: RowSink | None) -> None:
    """End of a rank's shards: its rows durable before its partial travels to rank 0 (and the
    file closed: a later pass, if any, opens it again)."""
    if sink is not None:
        sink.sync()
        sink.close()


def deliver(sink: RowSink | None, output: str, write_result: Callable[[str], None]) -> None:
    """Rank 0: the output file (with the written datasets when the job writes rows)."""
    if sink is None:
        write_result(output)
    else:
        sink.deliver(write_result)


class _Wrapped:
    def __init__(self, job: Job, sink: RowSink, source: Any, plan: Any) -> None:
        self.inner, self.sink, self.source, self.plan = job, sink, source, plan
        self.names = list(job.outputs or {})
        self.filters = [n for n in self.names if (job.outputs or {})[n].rows == "filter"]
        self.wants_out = _takes_out(job.transform)
        self.buffers: dict[str, np.ndarray] = {}

    def job(self) -> Job:
        inner = self.inner
        return replace(inner, map=self.map, combine=self.combine, finalize=self.finalize, init=self.init,
                       update=self.update, variable_length=(*(OWN + n for n in inner.variable_length), ROWS))

    # --- state: the job's own, plus the phase and the filters' row places ---
    def init(self, ctx: ShardContext) -> dict[str, np.ndarray]:
        own = self._own_state(self.inner.init(ctx)) if self.inner.multipass else {}
        phase = JOB_PASSES if self.inner.multipass else (COUNTING if self.filters else WRITING)
        return {**own, PHASE: np.asarray(phase, np.int64),
                PLACES: np.zeros((self.plan.shards + 1, len(self.filters)), np.int64)}

    def _own_state(self, value: object) -> dict[str, np.ndarray]:
        state = check_partial(value, f"{self.inner.path}: init/update state")
        if not isinstance(state, Mapping):
            raise JobError(f"{self.inner.path}: a writing job's state must be a dict of arrays")
        return dict(state)

    def _split(self, ctx: ShardContext) -> tuple[ShardContext, int, np.ndarray]:
        state = dict(ctx.state or {})
        phase, places = int(state.pop(PHASE)), state.pop(PLACES)
        return replace(ctx, state=state if self.inner.multipass else None), phase, places

    def update(self, state: Mapping[str, np.ndarray], partial: Any, ctx: ShardContext) -> tuple[dict, bool]:
        jctx, phase, places = self._split(replace(ctx, state=state))
        if phase == WRITING:
            return dict(state), True
        own = dict(jctx.state or {})
        if phase == JOB_PASSES:
            new, done = self.inner.update(jctx.state, _own(partial), jctx)
            own = self._own_state(new)
            phase = (COUNTING if self.filters else WRITING) if done else JOB_PASSES
        else:
            counts = partial[ROWS].reshape(self.plan.shards, len(self.names))
            kept = counts[:, [self.names.index(n) for n in self.filters]]
            places = np.concatenate([np.zeros((1, len(self.filters)), np.int64), np.cumsum(kept, axis=0)])
            phase = WRITING
        return {**own, PHASE: np.asarray(phase, np.int64), PLACES: places}, False

    # --- the partials: the job's own (keys prefixed) and the rows per shard and output ---
    def map(self, shard: np.ndarray, ctx: ShardContext) -> dict[str, np.ndarray]:
        jctx, phase, places = self._split(ctx)
        own: Any = {}
        rows = np.zeros(0, np.int64)
        if phase in (WRITING, JOB_PASSES):
            own = self.inner.map(shard, jctx)
        if phase in (COUNTING, WRITING):
            try:
                rows = self._transform(shard, jctx, phase, places)
            except Exception:
                self.sink.failed()
                raise
        return {**{OWN + k: v for k, v in items(check_partial(own, f"{self.inner.path}: map"))}, ROWS: rows}

    def _transform(self, shard: np.ndarray, ctx: ShardContext, phase: int, places: np.ndarray) -> np.ndarray:
        made = self.inner.transform(shard, ctx, self._out(len(shard))) if self.wants_out \
            else self.inner.transform(shard, ctx)
        if not isinstance(made, Mapping) or set(made) != set(self.names):
            got = sorted(made) if isinstance(made, Mapping) else type(made).__name__
            raise JobError(f"{self.inner.path}: transform must return a dict with keys {self.names}, got {got}")
        self._fix(ctx, phase, places)
        counts = np.zeros(len(self.names), np.int64)
        real = (ctx.start, ctx.stop) == self.plan.bounds(ctx.index)   # not the compile warm-up
        for i, name in enumerate(self.names):
            rows = self.sink.checked(name, made[name], ctx.index)
            counts[i] = len(rows)
            if name not in self.filters:
                if len(rows) != ctx.stop - ctx.start:
                    raise JobError(f"{self.inner.path}: transform returned {len(rows)} rows for {name!r} "
                                   f"(an Output(rows='same')) in shard {ctx.index}, which has "
                                   f"{ctx.stop - ctx.start}")
                if phase == WRITING and real:
                    self.sink.write(name, rows, ctx.start)
            elif phase == WRITING and real:
                f = self.filters.index(name)
                first, end = int(places[ctx.index, f]), int(places[ctx.index + 1, f])
                if end - first != len(rows):
                    raise JobError(f"{self.inner.path}: transform kept {len(rows)} rows of {name!r} in shard "
                                   f"{ctx.index}, {end - first} when counting: it must depend only on "
                                   f"the shard and ctx")
                self.sink.write(name, rows, first)
        return counts

    def _out(self, rows: int) -> dict[str, np.ndarray]:
        """``transform(shard, ctx, out)``: a reused buffer per 1:1 output, once its layout is known
        (why: a fresh shard-sized array per shard costs page faults, and on a ballooned VM much more)."""
        if self.sink.rows is None:
            return {}
        if not self.buffers:
            most = min(self.plan.shard_rows, self.source.rows)
            self.buffers = {n: np.empty((most, *self.sink.rows[n][1]), self.sink.rows[n][0])
                            for n in self.names if n not in self.filters}
        return {n: buf[:rows] for n, buf in self.buffers.items()}

    def _fix(self, ctx: ShardContext, phase: int, places: np.ndarray) -> None:
        """The datasets' layout, from the first rows (the same on every rank, however it runs),
        and in the writing pass their lengths and offsets."""
        if self.sink.rows is None:
            n = min(PROBE_ROWS, self.source.rows)
            first = self.source.read(0, n, self.source.empty(n))
            probe = replace(ctx, index=0, start=0, stop=n)
            made = self.inner.transform(first, probe, {}) if self.wants_out else self.inner.transform(first, probe)
            self.sink.fix(made)
        if phase == WRITING and not self.sink.offsets:
            self.sink.place({name: (int(places[-1, self.filters.index(name)]) if name in self.filters
                                    else self.source.rows) for name in self.names})

    def combine(self, a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        mine, theirs = _own(a), _own(b)
        own = self.inner.combine(mine, theirs) if (_has_own(a) or _has_own(b)) else {}
        merged = {OWN + k: v for k, v in items(check_partial(own, f"{self.inner.path}: combine"))}
        return {**merged, ROWS: np.concatenate([a[ROWS], b[ROWS]])}

    def finalize(self, partial: Mapping[str, np.ndarray], ctx: ShardContext) -> Mapping[str, Any]:
        jctx, phase, places = self._split(ctx)
        self._fix(jctx, phase, places)      # rank 0 may have written no shard (a resume, a dynamic schedule)
        return self.inner.finalize(_own(partial), jctx)


def _takes_out(transform: Any) -> bool:
    try:
        return len(inspect.signature(transform).parameters) >= 3
    except (TypeError, ValueError):
        return False


def _has_own(partial: Mapping[str, np.ndarray]) -> bool:
    return any(k.startswith(OWN) for k in partial)


def _own(partial: Mapping[str, np.ndarray]) -> Any:
    pairs = [(k[len(OWN):], v) for k, v in partial.items() if k.startswith(OWN)]
    return from_items(pairs) if pairs else {}
