"""Programs the benchmarks compare hpcdist with, shipped inside the package so that
``hpcdist bench compare`` finds them from an installed hpcdist as well as from a checkout.

They are run as scripts by path (``python FILE``), not as ``-m hpcdist...`` modules: a peer must
not pay for importing hpcdist when hpcdist does not.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path


def script(name: str) -> Path:
    """The file of the peer script ``name`` (e.g. ``handwritten_stats``)."""
    path = Path(str(resources.files(__name__).joinpath(f"{name}.py")))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: peer script missing from the hpcdist package")
    return path


def handwritten_stats_cmd() -> list[str]:
    """``python .../handwritten_stats.py``: the stats reduction written by hand (mpi4py, h5py, numba)."""
    return [sys.executable, str(script("handwritten_stats"))]
