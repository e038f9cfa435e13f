"""The Job contract and loading a job file.

A job file is a plain Python module that defines, in the spirit of dask's
``reduction(chunk, combine, aggregate)``:

- ``map(shard, ctx) -> partial``: one shard (rows along axis 0; the buffer is reused, so keep no
  reference to it) to a partial: a numpy array or a dict of arrays.
- ``combine(a, b) -> partial``: merge two partials; ``a`` covers earlier rows than ``b``.
- ``finalize(partial, ctx) -> dict[str, array]``: the named results.

and optionally ``PARAMS`` (``{name: Param(type, default, help)}``), ``INPUT_NDIM`` (allowed input
dimensions), ``default_input(params) -> str`` (a source spec so the job runs with no file),
``check(ctx)`` (raise UserError for params that do not fit the data; runs once, on rank 0),
``VARIABLE_LENGTH`` (names of partial arrays whose first axis may differ between shards; every
other array keeps the first partial's dtype and shape) and, for multi-pass jobs,
``init(ctx) -> state`` and ``update(state, partial, ctx) -> (state, done)``.

A keyed job (reduce by key, docs/keyed.md) defines ``map_keyed(shard, ctx) -> (keys int64[n],
{name: array[n, ...]})`` (keys unique within the shard) instead of ``map``; its ``combine`` and
``finalize`` then take arrays whose first axis is the keys.

A job that writes row datasets defines ``transform(shard, ctx) -> {name: rows}`` and declares
``OUTPUTS = {name: hpcdist.sinks.Output(rows="same" | "filter")}``; its map/combine/finalize are
then optional (see docs/writing.md and :mod:`hpcdist.sinks`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Mapping

from hpcdist.errors import UserError
from hpcdist.params import Param
from hpcdist.sinks.declare import Output, parse_outputs

_REQUIRED = ("map", "combine", "finalize")


def _required(module: Any) -> tuple[str, ...]:
    """A keyed job's ``map_keyed`` stands in for ``map``."""
    return _REQUIRED[1:] if callable(getattr(module, "map_keyed", None)) else _REQUIRED


@dataclass(frozen=True)
class Job:
    """A loaded job: its functions, declared params and identity (name, path, source hash)."""

    name: str
    path: str
    source_sha256: str
    params: Mapping[str, Param]
    map: Callable[..., Any]
    combine: Callable[[Any, Any], Any]
    finalize: Callable[..., Mapping[str, Any]]
    default_input: Callable[[Mapping[str, Any]], str] | None = None
    input_ndim: tuple[int, ...] | None = None
    check: Callable[..., None] | None = None
    init: Callable[..., Any] | None = None
    update: Callable[..., Any] | None = None
    variable_length: tuple[str, ...] = ()
    map_keyed: Callable[..., Any] | None = None
    transform: Callable[..., Any] | None = None
    outputs: Mapping[str, Output] | None = None

    @property
    def keyed(self) -> bool:
        return self.map_keyed is not None

    @property
    def multipass(self) -> bool:
        return self.update is not None


def load_job(path: str) -> Job:
    """Import the job file at ``path``; a missing file or missing function is a UserError."""
    if not os.path.isfile(path):
        hint = " (give the path of a job file, e.g. jobs/stats.py)" if not path.endswith(".py") else ""
        raise UserError(f"unknown job {path!r}: no such file{hint}")
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    return _job_from(_import_file(path), path, digest)


def job_from_object(obj: Any) -> Job:
    """A job from an imported module or any object with the job's functions (the Python API)."""
    path = getattr(obj, "__file__", None)
    if path and os.path.isfile(path):
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
    else:
        name = getattr(obj, "__name__", type(obj).__name__)
        path = f"<{name}>"
        digest = hashlib.sha256(path.encode()).hexdigest()
    return _job_from(obj, path, digest)


def _job_from(module: Any, path: str, digest: str) -> Job:
    transform = getattr(module, "transform", None)
    outputs = parse_outputs(getattr(module, "OUTPUTS", None), callable(transform), path)
    missing = [name for name in _required(module) if not callable(getattr(module, name, None)) and not outputs]
    if missing:
        raise UserError(f"{path}: not a job: missing function(s) {', '.join(missing)}")
    init, update = getattr(module, "init", None), getattr(module, "update", None)
    if (init is None) != (update is None):
        raise UserError(f"{path}: a multi-pass job defines both init() and update()")
    params = getattr(module, "PARAMS", {})
    if not isinstance(params, Mapping) or not all(isinstance(p, Param) for p in params.values()):
        raise UserError(f"{path}: PARAMS must map names to hpcdist.Param(...)")
    ndim = getattr(module, "INPUT_NDIM", None)
    varying = getattr(module, "VARIABLE_LENGTH", ())
    if isinstance(varying, str) or not all(isinstance(n, str) for n in varying):
        raise UserError(f"{path}: VARIABLE_LENGTH must be a tuple of partial names, got {varying!r}")
    return Job(
        name=getattr(module, "NAME", os.path.splitext(os.path.basename(path))[0].strip("<>")),
        path=os.path.abspath(path) if os.path.isfile(path) else path,
        source_sha256=digest,
        params=dict(params),
        map=getattr(module, "map", _no_partial),
        combine=getattr(module, "combine", _no_partial),
        finalize=getattr(module, "finalize", _no_partial),
        default_input=getattr(module, "default_input", None),
        input_ndim=tuple(ndim) if ndim is not None else None,
        check=getattr(module, "check", None),
        init=init,
        update=update,
        variable_length=tuple(varying),
        map_keyed=getattr(module, "map_keyed", None) if callable(getattr(module, "map_keyed", None)) else None,
        transform=transform if outputs else None,
        outputs=outputs or None,
    )


def _no_partial(*_: Any) -> dict:
    """map/combine/finalize of a job that only writes rows: nothing to reduce."""
    return {}


def _import_file(path: str) -> ModuleType:
    stem = os.path.splitext(os.path.basename(path))[0]
    name = f"hpcdist_job_{stem}_{hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken job file is a bad input: say where, in one line
        del sys.modules[name]
        raise UserError(f"{path}: cannot load job: {type(exc).__name__}: {exc}") from exc
    return module
