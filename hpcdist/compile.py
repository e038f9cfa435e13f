"""``hpcdist compile JOB.py``: fill numba's cache with the job's kernels before a run needs them.

A first run on a fresh node spends seconds compiling (4.7 s for the stats kernels on the
development machine). Run once per node before ``srun`` of the job (the rendered Slurm scripts do),
it leaves every rank of the run only loading the cache, all at once. It walks every pass of the job
on the input's first rows (map, combine, update, finalize), so kernels that only later passes use
are compiled too. The kernels' types come from the input, so give the run's ``--input`` and params.

No MPI is started: this is one process, and any number of them may run at once (they take turns
through :mod:`hpcdist.warmup`'s lock).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

import numpy as np

from hpcdist.errors import EXIT_FAILURE, EXIT_USAGE, JobError, UserError

MAX_WARM_PASSES = 100


def add_compile_parser(sub: Any) -> None:
    p = sub.add_parser("compile", help="compile the job's numba kernels into the cache (once per node, before a run)")
    p.add_argument("job", help="job file, e.g. jobs/stats.py")
    p.add_argument("--input", "-i", help="the run's input (the kernels' types come from it; default: the job's own)")
    p.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                   help="job parameter, as given to run (repeatable)")
    p.set_defaults(func=_cmd_compile)


def _cmd_compile(args: argparse.Namespace) -> int:
    from hpcdist import numba_env
    numba_env.configure(1)      # before the job imports numba: the cache directory the runs use
    try:
        line = compile_job(args.job, args.input, args.param)
    except UserError as exc:
        print(f"hpcdist: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except JobError as exc:
        print(f"hpcdist: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - a bug in the job: its folded traceback, as run shows it
        from hpcdist.failures import report
        sys.stderr.write(report(exc, 0))
        return EXIT_FAILURE
    print(line, file=sys.stderr)
    return 0


def compile_job(path: str, spec: str | None, assignments: list[str]) -> str:
    """Compile (or load) every kernel of the job at ``path``; returns the line to print."""
    from hpcdist.context import ShardContext
    from hpcdist.job import load_job
    from hpcdist.params import parse_assignments, resolve_params
    from hpcdist.preflight import default_input
    from hpcdist.sources import open_source
    from hpcdist.warmup import WARM_ROWS, compile_lock_path, warm

    job = load_job(path)
    params = resolve_params(job.params, parse_assignments(assignments), job.name)
    spec = spec or default_input(job, params)
    with open_source(spec) as source:
        rows = min(source.rows, WARM_ROWS)
        tiny = source.read(0, rows, source.empty(rows))
        ctx = ShardContext(params=params, rows=source.rows, row_shape=source.row_shape, dtype=source.dtype,
                           index=0, start=0, stop=rows, sample=lambda n, seed: source.take(np.arange(min(n, rows))))
        compiled, seconds = False, 0.0
        state = job.init(ctx) if job.multipass and job.init is not None else None
        for pass_index in range(MAX_WARM_PASSES):
            here = replace(ctx, pass_index=pass_index, state=state)
            out: dict[str, Any] = {}
            step = warm(lambda: out.update(root=_one_pass(job, tiny, here, out)))
            compiled, seconds = compiled or step.compiled, seconds + step.seconds
            if out.get("done", True):
                break
            state = out["state"]
    where = compile_lock_path().rsplit("/", 1)[0]
    verb = "compiled into" if compiled else "already in"
    return f"{job.name}: kernels {verb} the numba cache {where} ({seconds:.2f} s)"


def _one_pass(job: Any, tiny: np.ndarray, ctx: Any, out: dict[str, Any]) -> Any:
    """map, combine, then update (multi-pass) or finalize, as a run's pass would call them
    (a keyed job: its ``map_keyed`` and the keyed merge with its ``combine``)."""
    if getattr(job, "map_keyed", None) is not None:
        from hpcdist.keyed.fold import keyed_combine, keyed_leaf, rehearse
        rehearse(keyed_leaf(job.map_keyed(tiny, ctx), "compile"), keyed_combine(job.combine))
        out["done"] = True
        return None
    root = job.combine(job.map(tiny, ctx), job.map(tiny, ctx))
    if job.multipass:
        state, done = job.update(ctx.state, root, ctx)
        out["state"], out["done"] = state, bool(done)
        if not done:
            return root
    job.finalize(root, ctx)
    out["done"] = True
    return root
