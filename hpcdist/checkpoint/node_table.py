"""Saved tree nodes as one table: one dataset per field for all nodes, so a write costs the same at 8 and 8,000 nodes.

A group per node made a checkpoint's cost grow with the rank count (HDF5 spends ~4 ms creating
each group and its datasets). Here the nodes are columns instead:

- ``level``, ``index``: int64[N], the node's place in the shard tree;
- ``fields/<name>/data``: every node's values of that field, flattened and concatenated in node order;
- ``fields/<name>/shape``: int64[M, ndim], each node's shape of that field (the offsets follow from it);
- ``fields/<name>/node``: int64[M], which nodes hold the field (all N in a real run).

A bare-array partial is the one field named ``_`` with attribute ``bare``. Every dataset carries
fletcher32 (when not empty), and the file's SHA-256 trailer covers them all. All nodes of a run have
one layout (:class:`hpcdist.partials.LayoutCheck` saw to it, up to a variable first axis), so a
field's dtype is the same in every node; a mismatch is refused rather than silently promoted.
"""

from __future__ import annotations

import h5py
import numpy as np

from hpcdist.partials import Node, from_items, items

_BARE = "_"


def write_nodes(group: h5py.Group, nodes: list[Node]) -> None:
    """Store ``nodes`` in ``group`` as one dataset per field (plus level, index and shapes)."""
    group.attrs["count"] = len(nodes)
    _dataset(group, "level", np.asarray([n[0] for n in nodes], dtype=np.int64))
    _dataset(group, "index", np.asarray([n[1] for n in nodes], dtype=np.int64))
    fields = group.create_group("fields")
    columns: dict[str, list[np.ndarray]] = {}
    holders: dict[str, list[int]] = {}
    for i, (_, _, partial) in enumerate(nodes):
        for name, arr in items(partial):
            columns.setdefault(name, []).append(np.asarray(arr))
            holders.setdefault(name, []).append(i)
    for name, arrays in columns.items():
        dtypes = {a.dtype.str for a in arrays}
        ndims = {a.ndim for a in arrays}
        if len(dtypes) > 1 or len(ndims) > 1:
            raise ValueError(f"checkpoint nodes differ in field {name!r}: dtypes {sorted(dtypes)}, ndims {sorted(ndims)}")
        sub = fields.create_group(name or _BARE)
        sub.attrs["bare"] = not name
        sub.attrs["dtype"] = arrays[0].dtype.str
        _dataset(sub, "data", np.concatenate([a.reshape(-1) for a in arrays]))
        shapes = np.zeros((len(arrays), arrays[0].ndim), dtype=np.int64)
        shapes[:] = [a.shape for a in arrays]
        _dataset(sub, "shape", shapes)
        _dataset(sub, "node", np.asarray(holders[name], dtype=np.int64))


def read_nodes(group: h5py.Group) -> list[Node]:
    """The nodes :func:`write_nodes` stored, in the order they were given, every bit as it was."""
    count = int(group.attrs["count"])
    levels, indices = group["level"][()], group["index"][()]
    per_node: list[list[tuple[str, np.ndarray]]] = [[] for _ in range(count)]
    for key, sub in group["fields"].items():
        name = "" if bool(sub.attrs["bare"]) else key
        data = sub["data"][()].astype(np.dtype(str(sub.attrs["dtype"])), copy=False)
        shapes, holders = sub["shape"][()], sub["node"][()]
        sizes = np.prod(shapes, axis=1, dtype=np.int64) if shapes.shape[1] else np.ones(len(holders), np.int64)
        ends = np.cumsum(sizes)
        if int(ends[-1] if len(ends) else 0) != data.size:
            raise ValueError(f"checkpoint field {key!r}: {data.size} values for the shapes stored")
        for j, i in enumerate(holders):
            piece = data[int(ends[j] - sizes[j]):int(ends[j])]
            per_node[int(i)].append((name, piece.reshape(tuple(int(s) for s in shapes[j]))))
    return [(int(levels[i]), int(indices[i]), from_items(per_node[i])) for i in range(count)]


def _dataset(group: h5py.Group, name: str, data: np.ndarray) -> None:
    checksum = data.size > 0
    group.create_dataset(name, data=data, fletcher32=checksum, chunks=data.shape if checksum else None)
