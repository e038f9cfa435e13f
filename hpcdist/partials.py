"""Partials are fixed-layout numpy data: one array, or a dict of named arrays.

They travel between ranks as a single byte buffer (a JSON header naming dtypes and shapes, then the
raw bytes) and are stored in HDF5 as plain datasets. Nothing here can carry or run code.
"""

from __future__ import annotations

import json
from typing import Iterable, Mapping, Union

import numpy as np

Partial = Union[np.ndarray, Mapping[str, np.ndarray]]
Node = tuple[int, int, Partial]   # (tree level, index at that level, partial)

_BARE = ""  # the name under which a bare-array partial travels


def check_partial(value: object, where: str) -> Partial:
    """Accept an array (or numpy scalar) or a dict of them; anything else is a clear TypeError."""
    if isinstance(value, Mapping):
        out = {}
        for name, arr in value.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"{where}: partial keys must be non-empty strings, got {name!r}")
            out[name] = _check_array(arr, f"{where}[{name!r}]")
        return out
    return _check_array(value, where)


def _check_array(value: object, where: str) -> np.ndarray:
    if not isinstance(value, (np.ndarray, np.generic)):
        raise TypeError(
            f"{where}: partials must be numpy arrays or dicts of arrays, got {type(value).__name__}"
        )
    arr = np.asarray(value)
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"{where}: partial arrays must be numeric, got dtype {arr.dtype}")
    return arr


def items(partial: Partial) -> list[tuple[str, np.ndarray]]:
    """Named arrays of a partial; a bare array is one item named ``""``."""
    if isinstance(partial, Mapping):
        return list(partial.items())
    return [(_BARE, partial)]


def from_items(pairs: Iterable[tuple[str, np.ndarray]]) -> Partial:
    pairs = list(pairs)
    if len(pairs) == 1 and pairs[0][0] == _BARE:
        return pairs[0][1]
    return dict(pairs)


def encode(nodes: list[Node], meta: Mapping | None = None) -> np.ndarray:
    """Tree nodes (and a small JSON-able ``meta`` dict) -> one uint8 buffer for an MPI message."""
    header, blobs = [], []
    for level, index, partial in nodes:
        layout = []
        for name, arr in items(partial):
            arr = arr if arr.flags.c_contiguous else arr.copy(order="C")  # keeps 0-d arrays 0-d
            layout.append([name, arr.dtype.str, list(arr.shape)])
            blobs.append(arr.reshape(-1).view(np.uint8))
        header.append([level, index, layout])
    head = json.dumps({"meta": meta or {}, "nodes": header}).encode()
    size = np.array([len(head)], dtype="<i8").view(np.uint8)
    return np.concatenate([size, np.frombuffer(head, dtype=np.uint8), *blobs])


def decode(buf: np.ndarray) -> list[Node]:
    """The nodes of :func:`encode`'s buffer; the arrays are fresh copies."""
    return decode_with_meta(buf)[0]


def decode_with_meta(buf: np.ndarray) -> tuple[list[Node], dict]:
    """The nodes and the ``meta`` dict of :func:`encode`'s buffer."""
    hlen = int(buf[:8].view("<i8")[0])
    header = json.loads(bytes(buf[8 : 8 + hlen]))
    pos = 8 + hlen
    nodes: list[Node] = []
    for level, index, layout in header["nodes"]:
        pairs = []
        for name, dtype, shape in layout:
            dt = np.dtype(dtype)
            count = int(np.prod(shape, dtype=np.int64))
            nbytes = count * dt.itemsize
            arr = buf[pos : pos + nbytes].copy().view(dt).reshape(tuple(shape))
            pairs.append((name, arr))
            pos += nbytes
        nodes.append((int(level), int(index), from_items(pairs)))
    return nodes, header["meta"]
