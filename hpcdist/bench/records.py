"""The JSON record of one benchmark run: its schema, checking, saving and loading.

One file per run (one launch of ``hpcdist bench strong|weak|compare``), named
``KIND-JOB-nRANKS-HOST-DATE.json``. The schema is documented in benchmarks/README.md; ``check``
enforces the part that ``report`` relies on and names the first field that is wrong.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any, Mapping

from hpcdist.errors import UserError

SCHEMA_ID = "hpcdist-bench/1"
KINDS = ("strong", "weak", "compare")

_NUM = (int, float)
# required fields of every record, and of strong/weak records and their points
RECORD_FIELDS: dict[str, tuple] = {
    "schema": (str,), "kind": (str,), "job": (str,), "date": (str,), "git_commit": (str, type(None)),
    "machine": (dict,), "versions": (dict,), "loadavg_start": (list,),
}
SCALING_FIELDS: dict[str, tuple] = {"launch": (dict,), "params": (str,), "data": (dict,), "points": (list,),
                                    "options": (dict,)}
POINT_FIELDS: dict[str, tuple] = {
    "ranks": (int,), "nodes": (int,), "ranks_per_node": (int,), "cores_per_node": (int,),
    "hostnames": (list,), "oversubscribed": (bool,), "rows": (int,), "data_bytes": (int,),
    "time_s": (dict,), "phases_s": (dict,), "rank": (dict,), "rows_per_s": _NUM,
    "imbalance": (*_NUM, type(None)), "GBps": (*_NUM, type(None)), "result_sha256": (str,),
}
TIME_FIELDS = ("min", "median", "max", "n")
PHASES = ("read", "compute", "reduce", "checkpoint", "output", "other")
COMPARE_FIELDS: dict[str, tuple] = {"peers": (dict,), "checks": (dict,), "data": (dict,), "workers": (int,)}


def check(rec: Any, where: str = "record") -> dict[str, Any]:
    """``rec`` if it is a valid record, else a UserError naming ``where`` and the field."""
    if not isinstance(rec, Mapping):
        raise UserError(f"{where}: not a JSON object")
    _fields(rec, RECORD_FIELDS, where)
    if rec["schema"] != SCHEMA_ID:
        raise UserError(f"{where}: schema {rec['schema']!r}, expected {SCHEMA_ID!r}")
    if rec["kind"] not in KINDS:
        raise UserError(f"{where}: kind {rec['kind']!r} is not one of {', '.join(KINDS)}")
    if rec["kind"] == "compare":
        _fields(rec, COMPARE_FIELDS, where)
        for name, peer in rec["peers"].items():
            if not isinstance(peer, Mapping) or "status" not in peer:
                raise UserError(f"{where}: peers.{name}: needs a status")
        return dict(rec)
    _fields(rec, SCALING_FIELDS, where)
    if not rec["points"]:
        raise UserError(f"{where}: points: empty")
    for i, pt in enumerate(rec["points"]):
        at = f"{where}: points[{i}]"
        if not isinstance(pt, Mapping):
            raise UserError(f"{at}: not an object")
        _fields(pt, POINT_FIELDS, at)
        if pt["ranks"] < 1:
            raise UserError(f"{at}.ranks: must be >= 1, got {pt['ranks']}")
        for key in TIME_FIELDS:
            value = pt["time_s"].get(key)
            if not isinstance(value, _NUM) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise UserError(f"{at}.time_s.{key}: expected a number >= 0, got {value!r}")
        if not pt["time_s"]["min"] <= pt["time_s"]["median"] <= pt["time_s"]["max"]:
            raise UserError(f"{at}.time_s: min <= median <= max does not hold")
        for key in PHASES:
            if not isinstance(pt["phases_s"].get(key), _NUM):
                raise UserError(f"{at}.phases_s.{key}: expected a number")
    return dict(rec)


def _fields(obj: Mapping, fields: Mapping[str, tuple], where: str) -> None:
    for key, types in fields.items():
        if key not in obj:
            raise UserError(f"{where}: missing field {key!r}")
        value = obj[key]
        if isinstance(value, bool) and bool not in types:
            raise UserError(f"{where}: field {key!r} should be {_names(types)}, got a boolean")
        if not isinstance(value, types):
            raise UserError(f"{where}: field {key!r} should be {_names(types)}, got {type(value).__name__}")


def _names(types: tuple) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def file_name(rec: Mapping[str, Any]) -> str:
    ranks = rec.get("launch", {}).get("ranks") or rec.get("workers") or 1
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", rec.get("machine", {}).get("hostname", "host"))
    stamp = re.sub(r"[^0-9T]", "", rec["date"])[:15]
    return f"{rec['kind']}-{rec['job']}-n{ranks}-{host}-{stamp}.json"


def save(rec: Mapping[str, Any], directory: str) -> str:
    """Write the record (checked first) as JSON into ``directory``; returns the path."""
    check(rec)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, file_name(rec))
    base, n = path[:-5], 1
    while os.path.exists(path):
        n += 1
        path = f"{base}-{n}.json"
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(_clean(rec), fh, indent=1, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def _clean(value: Any) -> Any:
    """NaN / inf -> null (JSON has neither); numpy scalars -> Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def load(path: str) -> dict[str, Any]:
    try:
        with open(path) as fh:
            rec = json.load(fh)
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return check(rec, path)


def load_dir(directory: str) -> list[tuple[str, dict[str, Any]]]:
    """Every record under ``directory`` (recursively), sorted by path; JSON files that are not
    records of this schema (no ``schema`` field) are ignored, broken records are errors."""
    if not os.path.isdir(directory):
        raise UserError(f"{directory}: no such directory")
    found = []
    for top, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.endswith(".json"):
                continue
            path = os.path.join(top, name)
            try:
                with open(path) as fh:
                    head = json.load(fh)
            except (OSError, json.JSONDecodeError) as exc:
                raise UserError(f"{path}: not valid JSON ({exc})") from None
            if isinstance(head, Mapping) and "schema" in head:
                found.append((path, check(head, path)))
    return found
