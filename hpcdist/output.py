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


def write_result(path: str, results: Mapping[str, Any], attrs: Mapping[str, Any]) -> None:
    """Each result a dataset at the root (in the job's order), run facts as attributes.

    Raises TypeError for a result HDF5 cannot hold (a job bug) and WriteFailed when the file
    cannot be written; either way nothing appears at ``path``.
    """
    values = {name: h5values.storable(name, value) for name, value in results.items()}

    def build(f: h5py.File) -> None:
        for name, (data, numpy_dtype) in values.items():
            h5values.mark(f.create_dataset(name, data=data), numpy_dtype)
        for key, value in attrs.items():
            f.attrs[key] = _attr(value)

    image = hdf5_bytes(build, track_order=True)
    try:
        atomic.write_bytes(path, image)
    except OSError as exc:
        raise WriteFailed(f"cannot write output {path}: {exc.strerror or exc}") from None


def read_result(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The datasets and attributes of a result file; any other kind of file is a UserError."""
    kind = file_kind(path)
    if kind is not Kind.RESULT:
        raise UserError(not_what_was_wanted(path, kind, Kind.RESULT))
    with h5py.File(path, "r") as f:
        data = {name: h5values.restore(f[name]) for name in f if isinstance(f[name], h5py.Dataset)}
        attrs = {k: _unattr(v) for k, v in f.attrs.items()}
    return data, attrs


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
