"""A job explains itself: ``hpcdist run JOB.py --help`` and ``hpcdist jobs [DIR]``.

Everything printed comes from the job file: the first line of its docstring, its ``PARAMS``
(name, type, default, help), its ``default_input`` and the results it promises, read from a
``RESULTS`` tuple or the docstring's ``Results:`` line. Nothing runs and MPI is not started.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from typing import Sequence

from hpcdist.errors import EXIT_USAGE, UserError

RUN_HELP = "hpcdist run --help"


def wants_job_help(argv: Sequence[str]) -> str | None:
    """The job path of ``run JOB.py ... --help`` (or ``-h``), else None (argparse's own help)."""
    args = list(argv)
    if len(args) < 2 or args[0] != "run" or not ({"--help", "-h"} & set(args)):
        return None
    job = args[1]
    return job if not job.startswith("-") else None


def job_help(path: str) -> str:
    """The text of ``hpcdist run JOB.py --help``."""
    from hpcdist.job import load_job   # imports the job (its kernels compile only when called)

    job = load_job(path)
    doc = _docstring(path)
    summary = _summary(doc)
    lines = [f"{job.name}: {summary}", "",
             f"usage: hpcdist run {path} [--input SPEC] [--output OUT.h5] [--param NAME=VALUE ...]",
             f"       (options of every run: {RUN_HELP})", ""]
    if job.params:
        lines.append("params (--param NAME=VALUE):")
        width = max(len(n) for n in job.params)
        for name, p in job.params.items():
            lines.append(f"  {name:<{width}}  {p.type.__name__:<5}  default {p.default!r:<8}  {p.help}".rstrip())
    else:
        lines.append("params: none")
    lines.append("")
    lines.append(f"default input: {_default_input(job)}")
    lines.append(f"results: {_results(path, doc)}")
    return "\n".join(lines)


def list_jobs(directory: str) -> str:
    """One line per job file in ``directory``: its name and docstring summary (``hpcdist jobs``)."""
    if not os.path.isdir(directory):
        raise UserError(f"{directory}: no such directory")
    rows = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not name.endswith(".py") or name.startswith("_") or not os.path.isfile(path):
            continue
        tree = _parse(path)
        if tree is None or not _defines_job(tree):
            continue
        rows.append((path, _summary(ast.get_docstring(tree) or "")))
    if not rows:
        return f"{directory}: no job files (a job defines map, combine and finalize)"
    width = max(len(p) for p, _ in rows)
    return "\n".join(f"{p:<{width}}  {s}" for p, s in rows) + \
        "\n\nhpcdist run JOB.py --help: a job's params, default input and results"


def main_job_help(path: str) -> int:
    try:
        print(job_help(path))
    except UserError as exc:
        print(f"hpcdist: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _summary(doc: str) -> str:
    """The docstring's first paragraph on one line (cut at 110 characters)."""
    first = " ".join(doc.strip().split("\n\n")[0].split()) if doc.strip() else "(no docstring)"
    return first if len(first) <= 110 else first[:107].rstrip() + "..."


def _docstring(path: str) -> str:
    tree = _parse(path)
    return (ast.get_docstring(tree) if tree is not None else None) or ""


def _parse(path: str) -> ast.Module | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return ast.parse(fh.read(), filename=path)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None


def _defines_job(tree: ast.Module) -> bool:
    """Read without importing: a top-level map/transform/map_keyed function makes a job file."""
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    return bool({"map", "transform", "map_keyed"} & names) and ("finalize" in names or "transform" in names)


def _default_input(job) -> str:
    from hpcdist.params import resolve_params
    from hpcdist.show import describe_input

    if job.default_input is None:
        return "none: give --input"
    spec = job.default_input(resolve_params(job.params, {}, job.name))
    described = describe_input(spec)
    return spec if described == spec else f"{spec}\n  ({described})"


def _results(path: str, doc: str) -> str:
    from hpcdist.job import load_job

    declared = getattr(_module_of(load_job(path)), "RESULTS", None)
    if declared:
        return ", ".join(declared)
    found = re.search(r"\bResults?:\s*(.+?)\.(?:\s|$)", " ".join(doc.split()))
    if found:
        return found.group(1).replace("``", "")
    return "not declared (see finalize in the job file, or add a 'Results: ...' sentence to its docstring)"


def _module_of(job) -> object:
    return sys.modules.get(getattr(job.map, "__module__", ""), None)
