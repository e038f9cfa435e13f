"""``hpcdist gen``: write a synthetic dataset of any size, streaming block by block.

Memory stays bounded (one block at a time) so files larger than RAM can be made; the file appears
under its final name only when complete.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from hpcdist.errors import UserError
from hpcdist.output import check_output_path
from hpcdist.sources import split_hdf5_spec
from hpcdist.sources.synthetic import BLOCK_ROWS, SyntheticSource

WRITE_BYTES = 64 << 20  # rows generated and written per step


def generate(target: str, source: SyntheticSource, chunk_rows: int | None = None) -> str:
    """Write ``source``'s rows to ``FILE.h5:/dataset`` or ``FILE.npy``; returns the file path."""
    npy = target.endswith(".npy")
    path, dataset = (target, None) if npy else split_hdf5_spec(target)
    check_output_path(path)
    if chunk_rows is not None and chunk_rows < 1:
        raise UserError(f"--chunk-rows must be >= 1, got {chunk_rows}")
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    step = max(BLOCK_ROWS, (WRITE_BYTES // max(1, source.row_bytes)) // BLOCK_ROWS * BLOCK_ROWS)
    shape = (source.rows, *source.row_shape)
    try:
        if npy:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=source.dtype, shape=shape)
            _fill(out, source, step)
            out.flush()
            del out
        else:
            chunks = (min(chunk_rows or _default_chunk_rows(source), source.rows), *source.row_shape)
            with h5py.File(tmp, "w") as f:
                ds = f.create_dataset(dataset, shape=shape, dtype=source.dtype, chunks=chunks)
                ds.attrs["generator"] = source.spec
                _fill(ds, source, step)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _fill(out, source: SyntheticSource, step: int) -> None:
    buf = source.empty(min(step, source.rows))
    for start in range(0, source.rows, step):
        stop = min(start + step, source.rows)
        out[start:stop] = source.read(start, stop, buf)


def _default_chunk_rows(source: SyntheticSource) -> int:
    """About 1 MiB chunks: large enough for fast raw-chunk reads, small enough to share out."""
    return max(1, (1 << 20) // max(1, source.row_bytes))
