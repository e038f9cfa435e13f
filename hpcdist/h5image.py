"""Small HDF5 files built in memory, then written with plain ``os.write``.

Why: when HDF5 itself meets a full disk, closing the file fails half way and leaves the library
with a dataset it already freed; the next flush (at the latest at interpreter exit) dereferences it
and the process dies with SIGSEGV. Results and checkpoints are small and already in memory, so
HDF5 builds them in a memory-only file and never sees the disk: a full disk, quota or I/O error is
then an ordinary ``OSError`` from :func:`hpcdist.atomic.write_bytes`.
"""

from __future__ import annotations

import itertools
import os
from typing import Callable

import h5py

_names = itertools.count()


def hdf5_bytes(build: Callable[[h5py.File], None], track_order: bool = False) -> bytes:
    """The bytes of an HDF5 file that ``build`` fills (``track_order``: list names in creation order)."""
    name = f"hpcdist-in-memory-{os.getpid()}-{next(_names)}"     # never created: backing_store=False
    f = h5py.File(name, "w", driver="core", backing_store=False, track_order=track_order)
    try:
        build(f)
        f.flush()
        return bytes(f.id.get_file_image())
    finally:
        f.close()
