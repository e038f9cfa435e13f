"""Result files: one HDF5 file per run, built in memory and written atomically.

A run that fails at any point leaves no file at the output path that looks valid; a full disk is
one line and exit 1 (:class:`hpcdist.errors.WriteFailed`), never a half-closed HDF5 file.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import h5py
import numpy as np

from hpcdist import atomic, h5values
from hpcdist.errors import UserError, WriteFailed
from hpcdist.filekind import Kind, file_kind, not_what_was_wanted
from hpcdist.h5image import hdf5_bytes


def check_output_path(path: str, what: str = "output") -> None:
    """Fail early (before any compute) if a file could not be written at ``path``."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise UserError(f"{what} {path}: is a directory, expected a file name such as {path.rstrip('/')}/result.h5")
    if not os.path.isdir(directory):
        raise UserError(f"{what} {path}: directory {directory} does not exist")
    probe = atomic.temp_path(path)
    try:
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{what} {path}: directory {directory} is not writable ({exc.strerror})") from None


def write_result(path: str, results: Mapping[str, Any], attrs: Mapping[str, Any],
                 record: Mapping[str, np.ndarray] | None = None) -> None:
    """Each result a dataset at the root (in the job's order), run facts as scalar attributes, and
    the run record (:mod:`hpcdist.runlog`: per-shard and per-rank datasets under ``/hpcdist``).
    Per-rank lists (``rank_*``) live only in ``/hpcdist/ranks``: an attribute stays O(1).

    Raises TypeError for a result HDF5 cannot hold (a job bug) and WriteFailed when the file
    cannot be written; either way nothing appears at ``path``.
    """
    values = {name: h5values.storable(name, value) for name, value in results.items()}

    def build(f: h5py.File) -> None:
        for name, (data, numpy_dtype) in values.items():
            h5values.mark(f.create_dataset(name, data=data), numpy_dtype)
        for key, value in attrs.items():
            if not key.startswith(_RANK_LIST):
                f.attrs[key] = _attr(value)
        for name, value in (record or {}).items():
            arr = np.asarray(value)
            f.create_dataset(name, data=arr, dtype=h5py.string_dtype() if arr.dtype == object else None)

    image = hdf5_bytes(build, track_order=True)
    try:
        atomic.write_bytes(path, image)
    except OSError as exc:
        raise WriteFailed(f"cannot write output {path}: {exc.strerror or exc}") from None


def read_result(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The results (root datasets) and attributes of a result file, with the per-rank lists
    (``rank_shards``, ``rank_busy_s``, ...) read back from ``/hpcdist/ranks``; any other kind of
    file is a UserError."""
    kind = file_kind(path)
    if kind is not Kind.RESULT:
        raise UserError(not_what_was_wanted(path, kind, Kind.RESULT))
    with h5py.File(path, "r") as f:
        data = {name: h5values.restore(f[name]) for name in f
                if isinstance(f[name], h5py.Dataset) and "hpcdist_rows" not in f[name].attrs}  # not rows written
        attrs = {k: _unattr(v) for k, v in f.attrs.items()}
        ranks = f.get("hpcdist/ranks")
        if isinstance(ranks, h5py.Group):
            for name in ("shards", "busy_s", "idle_s", "claims", "steals"):
                if name in ranks:
                    attrs[f"{_RANK_LIST}{name}"] = ranks[name][()].tolist()
    return data, attrs


def read_record(path: str) -> dict[str, np.ndarray]:
    """The run record's datasets (``shards/rank``, ``ranks/read_s``, ...; empty for older files)."""
    kind = file_kind(path)
    if kind is not Kind.RESULT:
        raise UserError(not_what_was_wanted(path, kind, Kind.RESULT))
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        group = f.get("hpcdist")
        if isinstance(group, h5py.Group):
            group.visititems(lambda name, obj: out.__setitem__(name, _column(obj))
                             if isinstance(obj, h5py.Dataset) else None)
    return out


def _column(ds: h5py.Dataset) -> np.ndarray:
    if h5py.check_string_dtype(ds.dtype) is not None:
        return np.asarray(ds.asstr()[()], dtype=str)
    return ds[()]


_RANK_LIST = "rank_"


def _attr(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)) and not isinstance(value, np.ndarray):
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
            return np.asarray(value)
        return json.dumps(value, sort_keys=True)
    return value


def _unattr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
