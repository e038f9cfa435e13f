"""The ``hpcdist`` command: run / gen / info. Known errors become one line and exit code 2."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Callable, Sequence

from hpcdist.argtypes import whole_number as _int  # the same parser as hpcdist bench's
from hpcdist.options import CHECKPOINT_EVERY_S, RESTART_MODES, SCHEDULES
from hpcdist.errors import EXIT_FAILURE, EXIT_REQUEUE, EXIT_USAGE, JobError, UserError, WriteFailed


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line naming the subcommand's --help (the usage block only with --help),
    printed by the first rank only (every rank parses the same argv)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if _launcher_rank() == 0:
            print(f"hpcdist: error: {message} ({self.prog} --help for usage)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _launcher_rank() -> int:
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def add_progress_flags(parser: argparse.ArgumentParser) -> None:
    """``--progress[=SECONDS]`` / ``--no-progress`` (run, gen, bench): see :mod:`hpcdist.progress`."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--progress", nargs="?", type=float, const=True, default=None, metavar="SECONDS",
                       help="progress line on stderr every SECONDS (default: in place about once a second "
                            "on a terminal, else one line every 30 s)")
    group.add_argument("--no-progress", dest="progress", action="store_false", help="no progress line")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hpcdist", description="MPI batch processing: run a job over sharded data.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a job on every rank (launch with mpiexec/srun for many ranks)")
    run.add_argument("job", help="job file, e.g. jobs/stats.py")
    run.add_argument("--input", "-i", help="FILE.h5:/dataset, FILE.npy, synthetic:rows=N,... or range:N "
                     "(default: the job's own synthetic data)")
    run.add_argument("--output", "-o", help="result HDF5 file (default: print the results)")
    run.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                     help="job parameter (repeatable)")
    run.add_argument("--shard-rows", type=_int, help="rows per shard (default: ~4 MB, chunk-aligned)")
    run.add_argument("--schedule", default="auto", choices=SCHEDULES,
                     help="who maps which shard: static blocks, or dynamic (own block first, idle ranks "
                          "steal tails; no master rank); auto: dynamic on more than one rank")
    add_progress_flags(run)
    ck = run.add_argument_group("checkpoint and restart")
    ck.add_argument("--checkpoint", metavar="PATH", help="checkpoint file: resumed from if it exists")
    ck.add_argument("--checkpoint-every", type=float, default=CHECKPOINT_EVERY_S, metavar="SECONDS",
                    help=f"write a checkpoint this often (default {CHECKPOINT_EVERY_S:g}; fractions allowed)")
    ck.add_argument("--checkpoint-every-shards", type=_int, metavar="N",
                    help="also write after every N shards rank 0 completes")
    ck.add_argument("--restart", default="auto", choices=RESTART_MODES,
                    help="auto: resume if a matching checkpoint exists; fresh: start over; "
                         "require: fail if there is nothing to resume")
    ck.add_argument("--keep-checkpoint", action="store_true",
                    help="keep the checkpoint, marked complete, after a successful run")
    run.set_defaults(func=_cmd_run)

    gen = sub.add_parser("gen", help="write a seeded synthetic dataset (streaming, any size)")
    gen.add_argument("target", help="OUT.h5:/dataset or OUT.npy")
    gen.add_argument("--rows", type=_int, required=True)
    gen.add_argument("--cols", type=_int, default=1)
    gen.add_argument("--dtype", default="float64", choices=["float32", "float64", "int32", "int64"])
    gen.add_argument("--seed", type=_int, default=0)
    gen.add_argument("--dist", default="normal", choices=["normal", "uniform", "int"])
    gen.add_argument("--nan", type=float, default=0.0, help="fraction of values set to NaN")
    gen.add_argument("--chunk-rows", type=_int, help="HDF5 chunk height (default: ~1 MiB chunks)")
    gen.add_argument("--force", action="store_true",
                     help="replace an existing dataset of that name (or an existing .npy); other datasets "
                          "in the file are never touched")
    add_progress_flags(gen)
    gen.set_defaults(func=_cmd_gen)

    info = sub.add_parser("info", help="print a result file readably")
    info.add_argument("path")
    info.add_argument("--full", action="store_true", help="print every value of every result, uncut")
    info.set_defaults(func=_cmd_info)

    inspect = sub.add_parser("inspect", help="describe a checkpoint: progress, fingerprint, validity")
    inspect.add_argument("path")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(func=_cmd_inspect)

    jobs = sub.add_parser("jobs", help="list the jobs in a directory with their one-line summaries")
    jobs.add_argument("directory", nargs="?", default="jobs")
    jobs.set_defaults(func=_cmd_jobs)

    report = sub.add_parser("report", help="what happened per rank: text summary and PNG timelines of a result file")
    report.add_argument("path", help="a result file (hpcdist run --output)")
    report.add_argument("--out", default=None, metavar="DIR",
                        help="directory for the PNGs, created if missing (default: OUT.report/ beside the file)")
    report.set_defaults(func=_cmd_report)

    from hpcdist.compile import add_compile_parser  # hpcdist compile JOB.py (fills numba's cache)
    add_compile_parser(sub)
    from hpcdist.slurm.cli import add_slurm_parser  # hpcdist slurm render|submit (hpcdist/slurm/)
    add_slurm_parser(sub)
    from hpcdist.bench.cli import add_bench_parser  # hpcdist bench strong|weak|report|compare (hpcdist/bench/)
    add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from hpcdist.jobhelp import main_job_help, wants_job_help
    job = wants_job_help(sys.argv[1:] if argv is None else argv)
    if job is not None:
        return main_job_help(job) if _launcher_rank() == 0 else 0   # the job's own params and results
    args = build_parser().parse_args(argv)
    return args.func(args)


def _cmd_run(args: argparse.Namespace) -> int:
    from hpcdist.startup import require_mpi4py
    require_mpi4py()  # exit 2 with one line if mpi4py is missing, before anything imports it
    from hpcdist.signals import stop_on_signals

    # handlers first, before MPI and numba start: a signal during start-up is a stop, not a kill
    with stop_on_signals(args.checkpoint is not None) as stop:
        return _run_command(args, stop)


def _run_command(args: argparse.Namespace, stop) -> int:
    from hpcdist.startup import check_allocation
    check_allocation()  # mpi4py importable, srun's MPI plugin right (else exit 2); logs a Slurm restart
    from hpcdist import numba_env
    from hpcdist.comm import run_spmd, world

    w = world()
    numba_env.configure(w.node_size)

    def body() -> int:
        from hpcdist.api import run_with_options
        from hpcdist.params import parse_assignments
        from hpcdist.control import Interrupted
        from hpcdist.options import RunOptions
        from hpcdist.show import describe_input, format_result

        given = w.agree(lambda: parse_assignments(args.param))
        options = RunOptions(input=args.input, output=args.output, params=given, shard_rows=args.shard_rows,
                             checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
                             checkpoint_every_shards=args.checkpoint_every_shards, restart=args.restart,
                             keep_checkpoint=args.keep_checkpoint, schedule=args.schedule, progress=args.progress)
        try:
            report = run_with_options(args.job, options, w.comm, stop)
        except Interrupted as interrupted:
            return _leave_interrupted(w, interrupted)
        except WriteFailed as exc:                            # every rank learnt it from rank 0
            if w.rank == 0:
                print(f"hpcdist: error: {exc}", file=sys.stderr, flush=True)
            return EXIT_FAILURE
        if w.rank == 0:
            target = f" -> {args.output}" if args.output else ""
            a = report.attrs
            print(f"{a['job']}: {a['rows']:,} rows in {a['shards']} shards on {a['ranks']} rank(s), "
                  f"{a['elapsed_s']:.3f} s (compile {a['compile_s']:.3f} s){target}", file=sys.stderr)
            print(f"input: {describe_input(str(a['input']))}", file=sys.stderr)
            if not args.output:
                print(format_result(report.results or {}))
        return 0

    return run_spmd(body, w.comm)


def _leave_interrupted(w, stop) -> int:
    """Every rank agreed to stop and rank 0 wrote the checkpoint: exit 75 ("requeue me").

    Ranks leave through MPI_Finalize, so the launcher reports 75 and MPI's shared memory is gone
    (``comm.leave``, with a watchdog should finalizing ever wait).
    """
    from hpcdist.comm import leave

    code = EXIT_REQUEUE if stop.saved else 1
    if w.rank == 0:
        print(f"hpcdist: {stop}; exit {code}", file=sys.stderr, flush=True)
    return leave(code)


def one_line_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A serial command's known errors as one line: bad input exit 2, a failed write or a job bug exit 1."""
    @functools.wraps(command)
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except UserError as exc:
            print(f"hpcdist: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except (WriteFailed, JobError) as exc:
            print(f"hpcdist: error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    return wrapped


@one_line_errors
def _cmd_gen(args: argparse.Namespace) -> int:
    from hpcdist.generate import generate
    from hpcdist.progress import watch_rows
    from hpcdist.sources.synthetic import SyntheticSource

    source = SyntheticSource(args.rows, args.cols, args.dtype, args.seed, args.dist, args.nan)
    watched, line = watch_rows(source, args.progress, "gen")
    path = generate(args.target, watched, args.chunk_rows, force=args.force)
    if line is not None:
        line.close()
    print(f"wrote {args.target}: {source.rows:,} x {args.cols} {args.dtype} "
          f"({source.nbytes / 1e9:.3f} GB) -> {path}", file=sys.stderr)
    return 0


@one_line_errors
def _cmd_info(args: argparse.Namespace) -> int:
    from hpcdist.output import read_result
    from hpcdist.show import format_attrs, format_full, format_result

    data, attrs = read_result(args.path)
    print(format_attrs(args.path, attrs))
    print(format_full(data) if args.full else format_result(data))
    return 0


@one_line_errors
def _cmd_report(args: argparse.Namespace) -> int:
    from hpcdist.report import make_report

    print(make_report(args.path, args.out or os.path.splitext(args.path)[0] + ".report"))
    return 0


@one_line_errors
def _cmd_jobs(args: argparse.Namespace) -> int:
    from hpcdist.jobhelp import list_jobs

    print(list_jobs(args.directory))
    return 0


@one_line_errors
def _cmd_inspect(args: argparse.Namespace) -> int:
    from hpcdist.checkpoint.inspect import inspect_checkpoint

    text, valid = inspect_checkpoint(args.path, as_json=args.json)
    print(text)
    return 0 if valid else 1
