"""Checkpoint files: self-describing HDF5, checksummed, written atomically, two generations kept.

Layout (readable with h5dump): root attributes ``format``, ``generation``, ``pass_index``,
``fingerprint`` (JSON), ``shards``, ``shards_done``, ``complete``, ``written_utc``, ``ranks``;
group ``nodes`` (the folded subtrees of the shard tree as one table, one dataset per field:
:mod:`hpcdist.checkpoint.node_table`),
``state/<name>`` (multi-pass state), ``results/<name>`` (a completed run kept with
``--keep-checkpoint``) and ``ranks/`` (per-rank progress). After HDF5's end of file a one-line
trailer ``HPCDIST-SHA256:<hex>`` holds the SHA-256 of every byte before it (HDF5 ignores bytes past
its end of file), so truncation or any flipped byte is detected before anything is read. State and
result arrays also carry HDF5's fletcher32 filter; the node table, up to tens of MB, does not.

A write goes to a temporary file which is fsync'd, then the current file becomes ``PATH.prev`` and
the temporary file becomes ``PATH``. A crash or a full disk at any moment leaves at least one
complete, valid generation. Nothing here unpickles or executes anything.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import h5py
import numpy as np

from hpcdist import atomic, h5values
from hpcdist.errors import UserError
from hpcdist.filekind import CHECKPOINT_FORMAT as FORMAT, CHECKPOINT_TRAILER as _TRAILER
from hpcdist.h5image import hdf5_bytes
from hpcdist.checkpoint.node_table import NodeTable, read_nodes, table, write_nodes
from hpcdist.tree import count_under_arrays
from hpcdist.partials import Node

FORMAT_VERSION = 2   # 2: nodes as one table (a group per node, format 1, grew with the rank count)
_BARE = "_"   # dataset name of a partial that is a bare array


@dataclass
class Checkpoint:
    fingerprint: dict[str, Any]
    pass_index: int
    nodes: list[Node]
    state: dict[str, np.ndarray] | None = None
    complete: bool = False
    results: dict[str, np.ndarray] | None = None
    generation: int = 0
    ranks: int = 1
    rank_shards: list[int] = field(default_factory=list)
    rank_busy_s: list[float] = field(default_factory=list)
    written_utc: str = ""
    allocation: dict[str, Any] = field(default_factory=dict)   # e.g. SLURM_JOB_ID, SLURM_RESTART_COUNT

    @property
    def shards(self) -> int:
        return int(self.fingerprint["shards"])

    def shards_done(self) -> int:
        if self.complete:
            return self.shards
        return count_under_arrays(np.asarray([n[0] for n in self.nodes], dtype=np.int64),
                                  np.asarray([n[1] for n in self.nodes], dtype=np.int64), self.shards)


def previous_path(path: str) -> str:
    return path + ".prev"


def save(path: str, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` as the next generation at ``path``; the last good one survives any failure.

    The file is built in memory (HDF5 never meets a full disk, see :mod:`hpcdist.h5image`), the
    checksum trailer appended, and the bytes written atomically with the current file kept as
    ``PATH.prev``. Raises OSError when the write fails.
    """
    ckpt.written_utc = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    image = hdf5_image(ckpt)
    atomic.write_bytes(path, [image, trailer(image)], previous=previous_path(path))


def hdf5_image(ckpt: Checkpoint, nodes: NodeTable | None = None) -> bytes:
    """The checkpoint file's bytes before the trailer (``nodes``: ``ckpt.nodes`` already as a table)."""
    return hdf5_bytes(lambda f: _write(f, ckpt, nodes if nodes is not None else table(ckpt.nodes)))


def remove(path: str) -> None:
    for p in (path, previous_path(path)):
        if os.path.exists(p):
            os.unlink(p)


def load(path: str) -> tuple[Checkpoint | None, list[str]]:
    """The newest valid generation at ``path`` (or ``path.prev``) and warnings about bad ones.

    Returns ``(None, [])`` when there is no checkpoint at all; raises UserError when there are
    checkpoint files but none is valid.
    """
    found, problems = [], []
    for candidate in (path, previous_path(path)):
        if not os.path.exists(candidate):
            continue
        try:
            found.append(read(candidate))
        except CorruptCheckpoint as exc:
            problems.append(f"{candidate}: {exc}")
    if not found and problems:
        raise UserError(f"no valid checkpoint: {'; '.join(problems)} (use --restart=fresh to start over)")
    if not found:
        return None, []
    best = max(found, key=lambda c: c.generation)
    warnings = [f"checkpoint {p} is corrupt, using generation {best.generation} instead" for p in problems]
    return best, warnings


class CorruptCheckpoint(Exception):
    """A checkpoint file that cannot be trusted: truncated, altered, or not a checkpoint."""


def read(path: str) -> Checkpoint:
    try:
        if not h5py.is_hdf5(path):
            raise CorruptCheckpoint("not an HDF5 file (truncated or overwritten?)")
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise CorruptCheckpoint(f"not an hpcdist checkpoint (format {f.attrs.get('format')!r})")
            if int(f.attrs.get("format_version", -1)) != FORMAT_VERSION:
                raise CorruptCheckpoint(f"checkpoint format {f.attrs.get('format_version')}, written by another "
                                        f"hpcdist version; this one reads format {FORMAT_VERSION}")
        _check_trailer(path)
        with h5py.File(path, "r") as f:
            return _read(f)
    except CorruptCheckpoint:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise CorruptCheckpoint(f"unreadable ({type(exc).__name__}: {exc})") from None


def _write(f: h5py.File, ckpt: Checkpoint, nodes: NodeTable) -> None:
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    for key, value in _steering_attrs(ckpt).items():
        f.attrs[key] = value
    f.attrs["ranks"] = ckpt.ranks
    f.attrs["written_utc"] = ckpt.written_utc
    f.attrs["allocation"] = json.dumps(ckpt.allocation, sort_keys=True)
    f.attrs["shards_done"] = (ckpt.shards if ckpt.complete else
                              count_under_arrays(nodes.levels, nodes.indices, ckpt.shards))
    write_nodes(f.create_group("nodes"), nodes)
    if ckpt.state is not None:
        _write_arrays(f.create_group("state"), ckpt.state.items())
    if ckpt.results is not None:
        _write_arrays(f.create_group("results", track_order=True), ckpt.results.items())   # the job's order
    ranks = f.create_group("ranks")
    ranks.create_dataset("shards_done", data=np.asarray(ckpt.rank_shards, dtype=np.int64))
    ranks.create_dataset("busy_s", data=np.asarray(ckpt.rank_busy_s, dtype=np.float64))


def _read(f: h5py.File) -> Checkpoint:
    nodes = read_nodes(f["nodes"], shard_order=True)
    state = dict(_read_arrays(f["state"])) if "state" in f else None
    results = dict(_read_arrays(f["results"])) if "results" in f else None
    return Checkpoint(
        fingerprint=json.loads(f.attrs["fingerprint"]),
        pass_index=int(f.attrs["pass_index"]),
        nodes=nodes,
        state=state,
        complete=bool(f.attrs["complete"]),
        results=results,
        generation=int(f.attrs["generation"]),
        ranks=int(f.attrs["ranks"]),
        rank_shards=np.asarray(f["ranks/shards_done"][()], dtype=np.int64).tolist(),
        rank_busy_s=np.asarray(f["ranks/busy_s"][()], dtype=np.float64).tolist(),
        written_utc=str(f.attrs["written_utc"]),
        allocation=json.loads(f.attrs.get("allocation", "{}")),
    )


def _write_arrays(group: h5py.Group, pairs: Iterable[tuple[str, np.ndarray]]) -> None:
    for name, arr in pairs:
        data, numpy_dtype = h5values.storable(name, arr)      # kept results may be strings
        flat = data.reshape(-1)
        checksum = flat.size > 0 and not h5values.is_string(flat)   # HDF5 filters refuse strings
        ds = group.create_dataset(name or _BARE, data=flat, fletcher32=checksum,
                                  chunks=(flat.size,) if checksum else None)
        h5values.mark(ds, numpy_dtype)
        ds.attrs["shape"] = np.asarray(data.shape, dtype=np.int64)
        ds.attrs["bare"] = not name


def _read_arrays(group: h5py.Group) -> list[tuple[str, np.ndarray]]:
    pairs = []
    for name, ds in group.items():
        arr = h5values.restore(ds, tuple(int(s) for s in ds.attrs["shape"]))
        pairs.append(("" if bool(ds.attrs["bare"]) else name, arr))
    return pairs


def _steering_attrs(ckpt: Checkpoint) -> dict[str, Any]:
    return {
        "fingerprint": json.dumps(ckpt.fingerprint, sort_keys=True),
        "generation": ckpt.generation,
        "pass_index": ckpt.pass_index,
        "complete": ckpt.complete,
        "shards": ckpt.shards,
    }


_TRAILER_LEN = len(_TRAILER) + 64 + 1


def trailer(image: bytes) -> bytes:
    """The line after HDF5's end of file: the SHA-256 of every byte before it."""
    return _TRAILER + hashlib.sha256(image).hexdigest().encode() + b"\n"


def _check_trailer(path: str) -> None:
    with open(path, "rb") as fh:
        data = memoryview(fh.read())      # slices of it are views: the body is not copied to hash it
    body, tail = data[:-_TRAILER_LEN], bytes(data[-_TRAILER_LEN:])
    if not tail.startswith(_TRAILER):
        raise CorruptCheckpoint("no checksum trailer (truncated or partly written)")
    if hashlib.sha256(body).hexdigest().encode() != tail[len(_TRAILER):-1]:
        raise CorruptCheckpoint("checksum mismatch (the file was altered or damaged)")
