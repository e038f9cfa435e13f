"""``hpcdist gen``: write a synthetic dataset of any size, streaming block by block.

Memory stays bounded (one block at a time) so files larger than RAM can be made. A new file
appears under its final name only when complete. Into an existing HDF5 file the dataset is
*added*: the file is never truncated and no other object in it is touched; the data is written
under a temporary name and moved to its final name when complete, so a crash never leaves a
complete-looking dataset. The disk space is reserved before HDF5 writes a byte: HDF5 meeting a full
disk half way through would damage the user's file (and crash the process when it closes it).
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from hpcdist import atomic
from hpcdist.errors import UserError, WriteFailed
from hpcdist.filekind import Kind, file_kind
from hpcdist.h5image import hdf5_bytes
from hpcdist.output import check_output_path
from hpcdist.sources import split_hdf5_spec
from hpcdist.sources.synthetic import BLOCK_ROWS, SyntheticSource

WRITE_BYTES = 64 << 20  # rows generated and written per step
_HDF5_KINDS = (Kind.RESULT, Kind.OTHER_HDF5)
_INDEX_BYTES_PER_CHUNK = 96   # HDF5's chunk index (B-tree entries and nodes), generously


def generate(target: str, source: SyntheticSource, chunk_rows: int | None = None, force: bool = False) -> str:
    """Write ``source``'s rows to ``FILE.h5:/dataset`` or ``FILE.npy``; returns the file path.

    Raises UserError for a target that would destroy something (an existing dataset or ``.npy``
    without ``force``, a file that is not HDF5) and WriteFailed when the disk refuses the bytes.
    """
    npy = target.endswith(".npy")
    path, dataset = (target, None) if npy else split_hdf5_spec(target)
    check_output_path(path)
    if chunk_rows is not None and chunk_rows < 1:
        raise UserError(f"--chunk-rows must be >= 1, got {chunk_rows}")
    step = max(BLOCK_ROWS, (WRITE_BYTES // max(1, source.row_bytes)) // BLOCK_ROWS * BLOCK_ROWS)
    kind = file_kind(path)
    try:
        if npy:
            if kind not in (Kind.MISSING, Kind.EMPTY) and not force:
                raise UserError(f"{path} already exists; use --force to replace it")
            with atomic.replacing(path) as tmp:
                _write_npy(tmp, source, step)
        elif kind in (Kind.MISSING, Kind.EMPTY):
            with atomic.replacing(path) as tmp:
                with open(tmp, "wb") as fh:
                    fh.write(hdf5_bytes(lambda f: None))     # an empty HDF5 file, then add to it
                _add_dataset(tmp, dataset, source, chunk_rows, step, force=False)
        elif kind in _HDF5_KINDS:
            _add_dataset(path, dataset, source, chunk_rows, step, force)
            atomic.fsync_path(path)
        else:
            raise UserError(f"{path} exists and is {kind.value}; hpcdist gen adds datasets only to HDF5 files "
                            f"it can open (choose another file)")
    except OSError as exc:
        raise WriteFailed(f"cannot write output {path}: {exc.strerror or exc}") from None
    return path


def _add_dataset(path: str, name: str, source: SyntheticSource, chunk_rows: int | None, step: int,
                 force: bool) -> None:
    """Write ``name`` into the HDF5 file at ``path`` under a temporary name, then move it into place."""
    name = "/" + name.strip("/")
    parent, leaf = name.rsplit("/", 1)
    if not leaf:
        raise UserError(f"{path}:{name}: expected a dataset name such as {path}:/x")
    temp = f"{parent}/.{leaf}{atomic.TEMP_MARK}{os.getpid()}"
    new_groups = _check_target(path, name, force)
    chunks = (min(chunk_rows or _default_chunk_rows(source), source.rows), *source.row_shape)
    n_chunks = -(-source.rows // chunks[0])
    _reserve(path, source.nbytes + n_chunks * _INDEX_BYTES_PER_CHUNK + (64 << 10))
    with h5py.File(path, "r+") as f:        # HDF5 gives the unused reservation back when it closes
        try:
            ds = f.create_dataset(temp, shape=(source.rows, *source.row_shape), dtype=source.dtype,
                                  chunks=chunks)
            ds.attrs["generator"] = source.spec
            _fill(ds, source, step)
            f.flush()
            if name in f:
                del f[name]
            f.move(temp, name)
            f.flush()
        except BaseException:
            _forget(f, [temp, *reversed(new_groups)])
            raise


def _check_target(path: str, name: str, force: bool) -> list[str]:
    """Refuse what gen must not overwrite; return the groups that will be created (outermost first)."""
    missing = []
    with h5py.File(path, "r") as f:
        parts = name.strip("/").split("/")
        for depth in range(1, len(parts)):
            prefix = "/" + "/".join(parts[:depth])
            if prefix not in f:
                missing.append(prefix)
            elif not isinstance(f[prefix], h5py.Group):
                raise UserError(f"{path}:{prefix} is a dataset, so it cannot hold {name}")
        if name in f and not missing:
            obj = f[name]
            if not isinstance(obj, h5py.Dataset):
                raise UserError(f"{path}:{name} is a group; hpcdist gen never replaces a group")
            if not force:
                raise UserError(f"{path}:{name} already exists ({' x '.join(map(str, obj.shape))} {obj.dtype}); "
                                f"use --force to replace this dataset")
    return missing


def _reserve(path: str, nbytes: int) -> None:
    """Allocate the blocks HDF5 will write into, past the file's end; nothing changes on failure."""
    fd = os.open(path, os.O_RDWR)
    size = os.fstat(fd).st_size
    try:
        os.posix_fallocate(fd, size, nbytes)
    except OSError:
        os.ftruncate(fd, size)
        raise
    finally:
        os.close(fd)


def _forget(f: h5py.File, names: list[str]) -> None:
    """After a failure: unlink what this run created, so the file looks as before."""
    for name in names:
        try:
            if name in f:
                del f[name]
        except (KeyError, OSError, RuntimeError):
            pass
    try:
        f.flush()
    except (OSError, RuntimeError):
        pass


def _write_npy(path: str, source: SyntheticSource, step: int) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(source.dtype), "fortran_order": False,
              "shape": (source.rows, *source.row_shape)}
    buf = source.empty(min(step, source.rows))
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for start in range(0, source.rows, step):
            stop = min(start + step, source.rows)
            fh.write(memoryview(source.read(start, stop, buf)).cast("B"))


def _fill(out: h5py.Dataset, source: SyntheticSource, step: int) -> None:
    buf = source.empty(min(step, source.rows))
    for start in range(0, source.rows, step):
        stop = min(start + step, source.rows)
        out[start:stop] = source.read(start, stop, buf)


def _default_chunk_rows(source: SyntheticSource) -> int:
    """About 1 MiB chunks: large enough for fast raw-chunk reads, small enough to share out."""
    return max(1, (1 << 20) // max(1, source.row_bytes))
