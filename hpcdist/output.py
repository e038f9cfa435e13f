"""Result files: one HDF5 file per run, written under a temporary name and renamed when complete.

A run that fails at any point leaves no file at the output path that looks valid.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import h5py
import numpy as np

from hpcdist.errors import UserError


def check_output_path(path: str, what: str = "output") -> None:
    """Fail early (before any compute) if a file could not be written at ``path``."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise UserError(f"{what} {path}: is a directory, expected a file name such as {path.rstrip('/')}/result.h5")
    if not os.path.isdir(directory):
        raise UserError(f"{what} {path}: directory {directory} does not exist")
    probe = _temp_name(path)
    try:
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{what} {path}: directory {directory} is not writable ({exc.strerror})") from None


def write_result(path: str, results: Mapping[str, Any], attrs: Mapping[str, Any]) -> None:
    """Each result a dataset at the root, run facts as attributes; atomic via temp file + rename."""
    tmp = _temp_name(path)
    try:
        with h5py.File(tmp, "w") as f:
            for name, value in results.items():
                f.create_dataset(name, data=np.asarray(value))
            for key, value in attrs.items():
                f.attrs[key] = _attr(value)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_result(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The datasets and attributes of a result file."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise UserError(f"{path}: not an HDF5 file")
    with h5py.File(path, "r") as f:
        data = {name: f[name][()] for name in f if isinstance(f[name], h5py.Dataset)}
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


def _temp_name(path: str) -> str:
    directory, base = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{base}.tmp-{os.getpid()}")


def fsync_path(path: str) -> None:
    """Flush a file (or directory) to disk before a rename makes it visible."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
