"""hpcdist: MPI batch processing with sharded Numba kernels and rank-count-independent reductions.

The public face is small: a job is three functions (``map``, ``combine``, ``finalize``) plus typed
``Param`` declarations; ``hpcdist run`` (or :func:`hpcdist.runtime.run`) does the rest on every rank.
"""

__version__ = "0.1.0"

from hpcdist.errors import UserError
from hpcdist.params import Param
from hpcdist.context import ShardContext

__all__ = ["__version__", "UserError", "Param", "ShardContext"]
