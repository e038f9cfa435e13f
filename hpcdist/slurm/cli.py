"""``hpcdist slurm render|submit``: a batch script from the templates, printed or submitted.

Registered by :func:`add_slurm_parser` from ``hpcdist.cli``. Options must be spelled out in full; a
misspelled one is reported with the valid names. Every problem is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from typing import Any, NoReturn

from hpcdist.argtypes import whole_number as _whole   # the same numbers as hpcdist run's (1e6, 1_000_000)
from hpcdist.errors import EXIT_USAGE, UserError
from hpcdist.slurm.render import MPI_PLUGINS, Spec, render
from hpcdist.slurm.templates import TEMPLATES


class _Parser(argparse.ArgumentParser):
    """One-line errors; an unknown option names the valid ones (argparse would defer it to the top)."""

    def parse_known_args(self, args: Any = None, namespace: Any = None):  # type: ignore[override]
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self._unknown(extras)
        return namespace, extras

    def _unknown(self, extras: list[str]) -> NoReturn:
        valid = sorted(opt for action in self._actions for opt in action.option_strings
                       if opt.startswith("--") and opt != "--help")
        word = extras[0].split("=", 1)[0]
        if word.startswith("-"):
            close = difflib.get_close_matches(word, valid, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.error(f"unknown option {word}{hint}; valid options: {', '.join(valid)}")
        self.error(f"unexpected argument {word!r}; valid options: {', '.join(valid)}")

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def add_slurm_parser(sub: Any) -> None:
    """Add ``slurm render`` and ``slurm submit`` to the ``hpcdist`` command's subparsers."""
    slurm = sub.add_parser("slurm", help="Slurm batch scripts: render one from a template, or submit it",
                           description="Batch scripts for Slurm, from the templates of slurm/*.sbatch.")
    actions = slurm.add_subparsers(dest="slurm_command", required=True, parser_class=_Parser,
                                   metavar="{render,submit}")
    render_p = actions.add_parser("render", help="print a batch script (hpcdist slurm render ... > run.sbatch)",
                                  allow_abbrev=False)
    _spec_options(render_p)
    render_p.set_defaults(func=_cmd_render)
    submit_p = actions.add_parser("submit", help="render and sbatch it; prints the job id", allow_abbrev=False)
    _spec_options(submit_p)
    submit_p.add_argument("--script", metavar="PATH", help="also save the script here (and submit that file)")
    submit_p.add_argument("--dry-run", action="store_true", help="print the script and the sbatch command only")
    submit_p.set_defaults(func=_cmd_submit)


def _spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="job file, e.g. jobs/stats.py (the script holds its absolute path)")
    p.add_argument("--template", default="run", choices=list(TEMPLATES),
                   help="run: one run; requeue: checkpoint before the time limit and requeue; array: a sweep")
    p.add_argument("--time", required=True, metavar="HH:MM:SS", help="time limit ([D-]HH:MM:SS)")
    p.add_argument("--nodes", type=_count, default=1, metavar="N")
    p.add_argument("--ntasks-per-node", type=_count, default=1, metavar="T", help="MPI ranks per node")
    p.add_argument("--cpus-per-task", type=_count, default=1, metavar="C", help="Numba threads per rank")
    p.add_argument("--input", metavar="SPEC", help="hpcdist run --input (default: the job's own)")
    p.add_argument("--output", metavar="OUT.h5", help="hpcdist run --output (array: must contain %%a)")
    p.add_argument("--checkpoint", metavar="PATH", help="checkpoint file (needed by --template requeue)")
    p.add_argument("--checkpoint-every", type=float, metavar="SECONDS", help="hpcdist run --checkpoint-every")
    p.add_argument("--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
                   help="job parameter (repeatable)")
    p.add_argument("--shard-rows", type=_count, metavar="N", help="hpcdist run --shard-rows")
    p.add_argument("--partition", metavar="P")
    p.add_argument("--account", metavar="A")
    p.add_argument("--job-name", metavar="NAME", help="default: hpcdist-<job file name>")
    p.add_argument("--mpi", default="pmi2", choices=list(MPI_PLUGINS),
                   help="srun's MPI plugin: pmi2 for the PyPI mpich wheel (default), pmix for Open MPI")
    p.add_argument("--signal", type=_count, default=120, metavar="SECONDS",
                   help="requeue: USR1 this long before the time limit (default 120)")
    p.add_argument("--max-requeues", type=_whole, default=5, metavar="N",
                   help="requeue: give up after this many restarts (default 5)")
    p.add_argument("--sweep", metavar="FILE", help="array: one line of hpcdist run options per task")
    p.add_argument("--log", metavar="PATH", help="the job's log (sbatch --output; default %%x-%%j.out)")
    p.add_argument("--hpcdist", default="hpcdist", metavar="CMD",
                   help="the hpcdist command on the compute nodes (default: the hpcdist of this Python's "
                        "venv, else the one on PATH; written as an absolute path)")


def _count(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text!r}")
    return value


def _spec(args: argparse.Namespace) -> Spec:
    return Spec(job=args.job, time=args.time, nodes=args.nodes, ntasks_per_node=args.ntasks_per_node,
                cpus_per_task=args.cpus_per_task, template=args.template, input=args.input,
                output=args.output, checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
                params=list(args.params), shard_rows=args.shard_rows, partition=args.partition,
                account=args.account, job_name=args.job_name, mpi=args.mpi, signal=args.signal,
                max_requeues=args.max_requeues, sweep=args.sweep, log=args.log, hpcdist=args.hpcdist)


def _cmd_render(args: argparse.Namespace) -> int:
    try:
        script = render(_spec(args))
    except UserError as exc:
        return _error(exc)
    sys.stdout.write(script)
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from hpcdist.slurm.submit import sbatch_command, submit

    try:
        script = render(_spec(args))
        if args.dry_run:
            sys.stdout.write(script)
            print(f"# dry run, not submitted: {' '.join(sbatch_command(args.script))}"
                  + ("" if args.script else " < (the script above)"), file=sys.stderr)
            return 0
        if args.script:
            _write(args.script, script)
        job_id = submit(script, args.script)
    except UserError as exc:
        return _error(exc)
    print(job_id)
    return 0


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(path, 0o755)
    except OSError as exc:
        raise UserError(f"--script {path}: {exc.strerror or exc}") from None


def _error(exc: UserError) -> int:
    print(f"hpcdist: error: {exc}", file=sys.stderr)
    return EXIT_USAGE
