"""Where rows come from: ``file.h5:/dataset``, ``file.npy``, ``synthetic:...`` and ``range:N``; a glob
or ``@list`` in the file part makes many files one input (:mod:`hpcdist.sources.multi`)."""

from __future__ import annotations

from typing import Any, Callable

from hpcdist.errors import UserError
from hpcdist.params import parse_int
from hpcdist.sources.base import Source
from hpcdist.sources.hdf5 import HDF5Source
from hpcdist.sources.multi import MultiSource, is_many
from hpcdist.sources.npy import NpySource
from hpcdist.sources.synthetic import RangeSource, SyntheticSource

__all__ = ["Source", "open_source", "split_hdf5_spec", "parse_synthetic"]

_SYNTHETIC_KEYS = {"rows": parse_int, "cols": parse_int, "dtype": str, "seed": parse_int,
                   "dist": str, "nan": float}


def open_source(spec: str, agree: Callable[[Callable[[], Any]], Any] | None = None) -> Source:
    """Open the data named by ``spec``; any problem with it is a one-line UserError. ``agree``
    (``World.agree``): what every rank needs to know about many files is read by rank 0 only."""
    if spec.startswith("synthetic:"):
        return SyntheticSource(**parse_synthetic(spec))
    if spec.startswith("range:"):
        text = spec[len("range:"):]
        try:
            return RangeSource(parse_int(text))
        except ValueError:
            raise UserError(f"{spec}: expected range:N with N a whole number") from None
    if spec.endswith(".npy") or (spec.startswith("@") and ":/" not in spec):
        if is_many(spec):      # 'dir/part-*.npy' or '@files.txt': many files, one input
            return MultiSource(spec, spec, NpySource, agree)
        return NpySource(spec)
    path, dataset = split_hdf5_spec(spec)
    if is_many(path):          # 'dir/part-*.h5:/x' or '@files.txt:/x'
        return MultiSource(spec, path, lambda p: HDF5Source(p, dataset), agree)
    return HDF5Source(path, dataset)


def split_hdf5_spec(spec: str) -> tuple[str, str]:
    """``data.h5:/group/x`` -> ``("data.h5", "/group/x")``."""
    path, sep, dataset = spec.rpartition(":")
    if not sep or not dataset.startswith("/") or not path:
        raise UserError(
            f"{spec}: expected FILE.h5:/path/to/dataset, FILE.npy, synthetic:rows=N,... or range:N"
        )
    return path, dataset


def parse_synthetic(spec: str) -> dict:
    """``synthetic:rows=1e6,cols=4`` -> keyword arguments of SyntheticSource."""
    body = spec[len("synthetic:"):]
    kwargs: dict = {}
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in _SYNTHETIC_KEYS:
            raise UserError(f"{spec}: bad item {item!r}; known keys: {', '.join(_SYNTHETIC_KEYS)}")
        try:
            kwargs[key] = _SYNTHETIC_KEYS[key](value)
        except ValueError:
            raise UserError(f"{spec}: {key}={value!r} is not a valid value") from None
    if "rows" not in kwargs:
        raise UserError(f"{spec}: synthetic data needs rows=N")
    return kwargs
