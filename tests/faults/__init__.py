"""Faults injected from the tests, never from production code.

``slow_write_env(seconds, path)`` is the environment of a subprocess run in which every atomic
write of ``path`` (a checkpoint generation) pauses ``seconds`` between writing its temporary file
and renaming it, so a test can signal or kill a rank exactly then. It works through
``sitecustomize.py`` beside this file, which Python imports at start-up when this directory is on
PYTHONPATH (every rank under mpiexec inherits it).
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def slow_write_env(seconds: float, path: str | os.PathLike) -> dict[str, str]:
    pythonpath = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH", "")]))
    return {"PYTHONPATH": pythonpath, "HPCDIST_TEST_SLOW_WRITE_S": str(seconds),
            "HPCDIST_TEST_SLOW_WRITE_OF": os.path.basename(os.fspath(path))}
