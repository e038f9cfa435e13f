"""Saved tree nodes as one table: one dataset per field for all nodes, so a write costs the same at 8 and 8,000 nodes.

A group per node made a checkpoint's cost grow with the rank count (HDF5 spends ~4 ms creating
each group and its datasets). Here the nodes are columns instead:

- ``level``, ``index``: int64[N], the node's place in the shard tree;
- ``fields/<name>/data``: every node's values of that field, flattened and concatenated in node order;
- ``fields/<name>/shape``: int64[M, ndim], each node's shape of that field (the offsets follow from it);
- ``fields/<name>/node``: int64[M], which nodes hold the field (all N in a real run).

A bare-array partial is the one field named ``_`` with attribute ``bare``. The file's SHA-256
trailer covers every byte and is checked before anything is read; the datasets here carry no second
checksum (fletcher32 over 20 MB of nodes cost a quarter of a write) and are contiguous. All nodes of a run have
one layout (:class:`hpcdist.partials.LayoutCheck` saw to it, up to a variable first axis), so a
field's dtype is the same in every node; a mismatch is refused rather than silently promoted.

Both directions are whole-column numpy work: a field of N equal-shaped arrays is one ``np.array``
copy on the way out and one ``reshape`` on the way back, so no Python step runs per node and field
beyond collecting the arrays (a mixed layout, which a real run never has, takes a slower path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import h5py
import numpy as np

from hpcdist.partials import Node, Partial, from_items, items

_BARE = "_"


@dataclass(frozen=True)
class Column:
    """One field of every node holding it: values flattened and concatenated, shapes, holders."""
    name: str              # the partial's key; "" for a bare array
    data: np.ndarray       # 1-D
    shapes: np.ndarray     # int64[M, ndim]
    holders: np.ndarray    # int64[M], positions in the node list


@dataclass(frozen=True)
class NodeTable:
    """The nodes as columns: what is written, and what is read back before nodes are rebuilt."""
    levels: np.ndarray     # int64[N]
    indices: np.ndarray    # int64[N]
    columns: list[Column]

    @property
    def count(self) -> int:
        return len(self.levels)


def table(nodes: list[Node]) -> NodeTable:
    """``nodes`` as columns; ValueError if a field's dtype (or number of axes) differs between nodes."""
    levels = np.asarray([n[0] for n in nodes], dtype=np.int64)
    indices = np.asarray([n[1] for n in nodes], dtype=np.int64)
    return NodeTable(levels, indices, [column(name, arrays, holders) for name, arrays, holders in
                                       collect([n[2] for n in nodes])])


def write_nodes(group: h5py.Group, nodes: list[Node] | NodeTable) -> None:
    """Store ``nodes`` (or their :func:`table`) in ``group`` as one dataset per field, plus level and index."""
    tab = nodes if isinstance(nodes, NodeTable) else table(nodes)
    group.attrs["count"] = tab.count
    _dataset(group, "level", tab.levels)
    _dataset(group, "index", tab.indices)
    fields = group.create_group("fields")
    for col in tab.columns:
        sub = fields.create_group(col.name or _BARE)
        sub.attrs["bare"] = not col.name
        sub.attrs["dtype"] = col.data.dtype.str
        _dataset(sub, "data", col.data)
        _dataset(sub, "shape", col.shapes)
        _dataset(sub, "node", col.holders)


def read_table(group: h5py.Group) -> NodeTable:
    """The columns :func:`write_nodes` stored, as they are in the file."""
    columns = []
    for key, sub in group["fields"].items():
        data = sub["data"][()].astype(np.dtype(str(sub.attrs["dtype"])), copy=False)
        columns.append(Column("" if bool(sub.attrs["bare"]) else key, data, sub["shape"][()], sub["node"][()]))
    count = int(group.attrs["count"])
    levels, indices = group["level"][()], group["index"][()]
    if len(levels) != count or len(indices) != count:
        raise ValueError(f"checkpoint nodes: {len(levels)} levels and {len(indices)} indices for {count} nodes")
    return NodeTable(levels, indices, columns)


def read_nodes(group: h5py.Group, shard_order: bool = False) -> list[Node]:
    """The nodes :func:`write_nodes` stored, every bit as it was: in the order given, or by first shard."""
    return nodes_of(read_table(group), shard_order)


def nodes_of(tab: NodeTable, shard_order: bool = False) -> list[Node]:
    """Rebuild the nodes of a table (views into its columns); ``shard_order``: sorted by first shard, stably."""
    count = tab.count
    pieces = [_pieces(col, count) for col in tab.columns]
    if all(p is not None for p in pieces):
        partials = _partials([col.name for col in tab.columns], pieces, count)
    else:
        partials = _partials_by_node(tab, count)
    nodes = list(zip(tab.levels.tolist(), tab.indices.tolist(), partials))
    if shard_order:
        order = np.argsort(tab.indices << tab.levels, kind="stable")
        nodes = [nodes[i] for i in order.tolist()]
    return nodes


# ---- writing ---------------------------------------------------------------------------------

def collect(partials: list[Partial]) -> list[tuple[str, list, np.ndarray]]:
    """(name, arrays, holders) per field. One list per name over all nodes when every partial is a
    bare array, or every one a dict with the same keys (a real run); else collected node by node."""
    if not partials:
        return []
    everyone = np.arange(len(partials), dtype=np.int64)
    kinds = {type(p) for p in partials}
    if all(issubclass(k, (np.ndarray, np.generic)) for k in kinds):
        return [("", partials, everyone)]
    first = partials[0]
    if all(issubclass(k, Mapping) for k in kinds) and {len(p) for p in partials} == {len(first)}:
        try:
            return [(name, [p[name] for p in partials], everyone) for name in first]
        except KeyError:
            pass     # same number of keys, other names: by node below
    columns: dict[str, list] = {}
    holders: dict[str, list[int]] = {}
    for i, partial in enumerate(partials):
        for name, arr in items(partial):
            columns.setdefault(name, []).append(arr)
            holders.setdefault(name, []).append(i)
    return [(name, arrays, np.asarray(holders[name], dtype=np.int64)) for name, arrays in columns.items()]


def column(name: str, arrays: list, holders: np.ndarray) -> Column:
    """One field's arrays as one flat array: a single copy when all have one shape, else concatenated."""
    try:
        dtypes = {a.dtype for a in arrays}
    except AttributeError:                       # a plain Python number: as numpy sees it
        arrays = [np.asarray(a) for a in arrays]
        dtypes = {a.dtype for a in arrays}
    first = np.asarray(arrays[0])
    if len(dtypes) == 1:
        try:
            stacked = np.array(arrays)           # one copy in C; ValueError when the shapes differ
        except ValueError:
            stacked = None
        if stacked is not None and stacked.shape == (len(arrays), *first.shape) and stacked.dtype == first.dtype:
            shapes = np.repeat(np.asarray([first.shape], dtype=np.int64).reshape(1, first.ndim), len(arrays), 0)
            return Column(name, stacked.reshape(-1), shapes, holders)
    ndims = {np.ndim(a) for a in arrays}
    if len(dtypes) > 1 or len(ndims) > 1:
        raise ValueError(f"checkpoint nodes differ in field {name!r}: dtypes {sorted(d.str for d in dtypes)}, "
                         f"ndims {sorted(ndims)}")
    shapes = np.asarray([np.shape(a) for a in arrays], dtype=np.int64).reshape(len(arrays), first.ndim)
    return Column(name, np.concatenate([np.ravel(a) for a in arrays]), shapes, holders)


def _dataset(group: h5py.Group, name: str, data: np.ndarray) -> None:
    group.create_dataset(name, data=data)


# ---- reading ---------------------------------------------------------------------------------

def _pieces(col: Column, count: int) -> list[np.ndarray] | None:
    """Every node's array of ``col`` when all ``count`` nodes hold it with one shape, else None."""
    shapes = col.shapes
    if len(col.holders) != count or not np.array_equal(col.holders, np.arange(count)):
        return None
    if count and shapes.size and not (shapes == shapes[0]).all():
        return None
    shape = tuple(shapes[0].tolist()) if count else ()
    if col.data.size != count * int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"checkpoint field {col.name or _BARE!r}: {col.data.size} values for the shapes stored")
    if shape:
        return list(col.data.reshape(count, *shape))
    return [row.reshape(()) for row in col.data.reshape(count, 1)]      # 0-d arrays, not numpy scalars


def _partials(names: list[str], pieces: list[list[np.ndarray]], count: int) -> list[Partial]:
    if names == [""]:
        return pieces[0]
    if "" in names:
        return [from_items(zip(names, values)) for values in zip(*pieces)]
    if not names:
        return [{} for _ in range(count)]
    return [dict(zip(names, values)) for values in zip(*pieces)]


def _partials_by_node(tab: NodeTable, count: int) -> list[Partial]:
    """A mixed layout (fields held by some nodes, shapes varying): piece by piece."""
    per_node: list[list[tuple[str, np.ndarray]]] = [[] for _ in range(count)]
    for col in tab.columns:
        shapes = col.shapes
        sizes = np.prod(shapes, axis=1, dtype=np.int64) if shapes.shape[1] else np.ones(len(col.holders), np.int64)
        ends = np.cumsum(sizes)
        if int(ends[-1] if len(ends) else 0) != col.data.size:
            raise ValueError(f"checkpoint field {col.name or _BARE!r}: {col.data.size} values for the shapes stored")
        for i, end, size, shape in zip(col.holders.tolist(), ends.tolist(), sizes.tolist(), shapes.tolist()):
            per_node[i].append((col.name, col.data[end - size:end].reshape(tuple(shape))))
    return [from_items(pairs) for pairs in per_node]
