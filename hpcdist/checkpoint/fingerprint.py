"""What would make a resume wrong: the job, its params, the input, the shard layout, the version."""

from __future__ import annotations

import json
from typing import Any, Mapping


def fingerprint(job: Any, params_json: str, source_description: Mapping[str, Any], shards: int,
                shard_rows: int, version: str) -> dict[str, Any]:
    """A JSON-able dict; two runs may share a checkpoint only if their fingerprints are equal."""
    return {
        "job": job.name,
        "job_sha256": job.source_sha256,
        "params": json.loads(params_json),
        "input": dict(source_description),
        "shards": shards,
        "shard_rows": shard_rows,
        "hpcdist_version": version,
    }


def differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Human-readable differences, e.g. ``input changed: mtime_ns 1 -> 2``."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            parts = [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            out.append(f"{_label(key)} changed: {', '.join(parts)}")
        else:
            out.append(f"{_label(key)} changed: {a!r} -> {b!r}")
    return out


def _label(key: str) -> str:
    return {"job_sha256": "job source", "shards": "shard layout", "shard_rows": "shard layout"}.get(key, key)
