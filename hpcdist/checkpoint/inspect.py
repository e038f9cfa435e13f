"""``hpcdist inspect CKPT``: progress, generation, fingerprint, per-rank progress and validity."""

from __future__ import annotations

import json
import os

from hpcdist.errors import UserError
from hpcdist.checkpoint.store import CorruptCheckpoint, previous_path, read
from hpcdist.filekind import Kind, file_kind, not_what_was_wanted

# Kinds that may be a checkpoint, damaged or not: described generation by generation.
_MAYBE_CHECKPOINT = (Kind.MISSING, Kind.CHECKPOINT, Kind.DAMAGED_HDF5, Kind.EMPTY)


def inspect_checkpoint(path: str, as_json: bool = False) -> tuple[str, bool]:
    """Text (or JSON) describing each generation at ``path``; True if at least one is valid.

    A file that is clearly something else (a result, another HDF5 file, text) is a UserError.
    """
    kind = file_kind(path)
    if kind not in _MAYBE_CHECKPOINT:
        raise UserError(not_what_was_wanted(path, kind, Kind.CHECKPOINT))
    generations = []
    for candidate in (path, previous_path(path)):
        if not os.path.exists(candidate):
            continue
        try:
            c = read(candidate)
            generations.append({
                "file": candidate, "valid": True, "generation": c.generation, "complete": c.complete,
                "pass_index": c.pass_index, "shards_done": c.shards_done(), "shards": c.shards,
                "written_utc": c.written_utc, "ranks": c.ranks, "rank_shards_done": c.rank_shards,
                "rank_busy_s": c.rank_busy_s, "nodes": len(c.nodes), "fingerprint": c.fingerprint,
                "allocation": c.allocation,
            })
        except CorruptCheckpoint as exc:
            generations.append({"file": candidate, "valid": False, "problem": str(exc)})
    if not generations:
        raise UserError(f"{path}: no such checkpoint")
    valid = any(g["valid"] for g in generations)
    if as_json:
        return json.dumps(generations, indent=2, sort_keys=True), valid
    lines = []
    for g in generations:
        if not g["valid"]:
            lines.append(f"{g['file']}: INVALID: {g['problem']}")
            continue
        fp = g["fingerprint"]
        state = "complete" if g["complete"] else f"{g['shards_done']:,} of {g['shards']:,} shards done"
        lines.append(f"{g['file']}: valid, generation {g['generation']}, {state}, pass {g['pass_index'] + 1}, "
                     f"written {g['written_utc']} by {g['ranks']} rank(s), {g['nodes']} tree node(s)")
        lines.append(f"  job {fp['job']} (sha256 {fp['job_sha256'][:12]}), params {json.dumps(fp['params'])}")
        lines.append(f"  input {fp['input'].get('input')} rows {fp['input'].get('rows')}, "
                     f"{fp['shards']} shards of {fp['shard_rows']} rows, hpcdist {fp['hpcdist_version']}")
        per_rank = ", ".join(f"{n}" for n in g["rank_shards_done"])
        lines.append(f"  shards done per rank: [{per_rank}]")
        if g["allocation"]:
            lines.append("  allocation " + ", ".join(f"{k}={v}" for k, v in sorted(g["allocation"].items())))
    return "\n".join(lines), valid
