"""A failing rank's report, written for the user whose job failed.

A job's exception passes through a dozen of hpcdist's frames (and numba's) before anyone sees it;
they say nothing about the bug. The report keeps the job's frames and the exception text, folds
each run of hpcdist's or numba's frames into one line, and ends with one line naming the place:
``rank 1: jobs/x.py:12 in map: TypeError: ...``. An error with no frame of the user's code on its
stack is hpcdist's own bug: its traceback is printed whole. Every line starts with ``rank N:``, at
one rank too, so reports from several ranks can be told apart and searched for.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import traceback

_HPCDIST = os.path.dirname(os.path.abspath(__file__))
_FOLDED = ("hpcdist", "numba")   # frames that say nothing about the user's bug
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def report(exc: BaseException, rank: int) -> str:
    """The folded traceback of ``exc`` and its one-line summary, every line prefixed ``rank N: ``."""
    te = traceback.TracebackException.from_exception(exc)
    fold = any(_owner(frame.filename) is None for frame in te.stack)
    text = "".join(_format(te, fold)) + summary(te)
    return "".join(f"rank {rank}: {line}\n" for line in text.splitlines())


def summary(te: traceback.TracebackException) -> str:
    """``jobs/x.py:12 in map: TypeError: first line of the message``: the innermost frame of the
    user's code (else the innermost frame) and the exception."""
    frames = list(te.stack)
    users = [f for f in frames if _owner(f.filename) is None]
    where = ""
    if users or frames:
        frame = (users or frames)[-1]
        where = f"{display_path(frame.filename)}:{frame.lineno} in {frame.name}: "
    lines = [line.strip() for line in str(te).splitlines() if line.strip()]
    message = f": {lines[0]}" if lines else ""
    if len(lines) > 1:
        message += " ..."
    return f"{where}{te.exc_type.__name__ if te.exc_type else 'Exception'}{message}"


def display_path(path: str) -> str:
    """``path`` relative to the working directory when it lies under it, else as it is."""
    full = os.path.abspath(path)
    here = os.getcwd()
    return os.path.relpath(full, here) if full.startswith(here + os.sep) else path


def _format(te: traceback.TracebackException, fold: bool) -> list[str]:
    out: list[str] = []
    if te.__cause__ is not None:
        out += _format(te.__cause__, fold) + [_CAUSE]
    elif te.__context__ is not None and not te.__suppress_context__:
        out += _format(te.__context__, fold) + [_CONTEXT]
    if te.stack:
        out.append("Traceback (most recent call last):\n")
        out += _frames(te.stack, fold)
    out += list(te.format_exception_only())
    return out


def _frames(stack: traceback.StackSummary, fold: bool) -> list[str]:
    """The frames as Python prints them, each run of hpcdist's or numba's frames as one line
    (the standard library's and other packages' frames are kept: they can explain the error)."""
    if not fold:
        return list(stack.format())
    out: list[str] = []
    run: list[traceback.FrameSummary] = []
    owner: str | None = None
    for frame in [*stack, None]:
        this = _owner(frame.filename) if frame is not None else "end"
        if run and this != owner:
            if owner not in _FOLDED:
                out += traceback.StackSummary.from_list(run).format()
            else:
                out.append(f"  ... {owner} internals: {len(run)} frame{'s' if len(run) > 1 else ''} ...\n")
            run = []
        if frame is not None:
            run.append(frame)
            owner = this
    return out


def _owner(filename: str) -> str | None:
    """``hpcdist`` or ``numba`` for their frames, ``python`` for the standard library and
    installed packages, None for the user's own code (the job file and what it imports)."""
    if filename.startswith("<"):
        return "python"                 # <frozen runpy>, <string>: not a file of the user's
    path = os.path.abspath(filename)
    for name, root in _roots():
        if path.startswith(root + os.sep):
            return name
    return None


def _roots() -> list[tuple[str, str]]:
    roots = [("hpcdist", _HPCDIST)]
    numba = sys.modules.get("numba")
    if numba is not None and getattr(numba, "__file__", None):
        roots.append(("numba", os.path.dirname(os.path.abspath(numba.__file__))))
    paths = sysconfig.get_paths()
    for key in ("purelib", "platlib", "stdlib", "platstdlib"):
        if paths.get(key):
            roots.append(("python", os.path.abspath(paths[key])))
    return roots
