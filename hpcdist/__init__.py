"""hpcdist: MPI batch processing with sharded Numba kernels and rank-count-independent reductions.

The public face is small: a job is three functions (``map``, ``combine``, ``finalize``) plus typed
``Param`` declarations; ``hpcdist run`` (or :func:`hpcdist.run` from Python) does the rest on every rank.
"""

__version__ = "0.1.0"

from typing import Any

from hpcdist.errors import UserError, WriteFailed
from hpcdist.params import Param
from hpcdist.context import ShardContext
from hpcdist.api import Result, run

__all__ = ["__version__", "UserError", "WriteFailed", "Interrupted", "Param", "ShardContext", "Result", "run"]


def __getattr__(name: str) -> Any:
    """``hpcdist.Interrupted`` without importing MPI when the package is imported."""
    if name == "Interrupted":
        from hpcdist.control import Interrupted
        return Interrupted
    raise AttributeError(f"module 'hpcdist' has no attribute {name!r}")
