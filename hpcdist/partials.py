"""Partials are fixed-layout numpy data: one array, or a dict of named arrays.

They travel between ranks as a single byte buffer (a JSON header naming dtypes and shapes, then the
raw bytes) and are stored in HDF5 as plain datasets. Nothing here can carry or run code.

The layout (names, dtypes, shapes) is checked, because a partial that changes shape is otherwise
broadcast by ``combine`` into a wrong answer with no error: the first partial of a pass fixes it,
and every later one (map results, combine results, nodes from other ranks) must match.
"""

from __future__ import annotations

import json
from typing import Collection, Iterable, Mapping, Union

import numpy as np

from hpcdist.errors import JobError

Partial = Union[np.ndarray, Mapping[str, np.ndarray]]
Node = tuple[int, int, Partial]   # (tree level, index at that level, partial)
Layout = tuple[tuple[str, np.dtype, tuple[int, ...]], ...]   # (name, dtype, shape), sorted by name

_BARE = ""  # the name under which a bare-array partial travels


class PartialTypeError(JobError, TypeError):
    """A job returned something that is not numeric arrays: a job's bug, of the TypeError kind."""


def check_partial(value: object, where: str) -> Partial:
    """Accept an array (or numpy scalar) or a dict of them; anything else is a clear TypeError."""
    if isinstance(value, Mapping):
        out = {}
        for name, arr in value.items():
            if not isinstance(name, str) or not name:
                raise PartialTypeError(f"{where}: partial keys must be non-empty strings, got {name!r}")
            out[name] = _check_array(arr, f"{where}[{name!r}]")
        return out
    return _check_array(value, where)


def _check_array(value: object, where: str) -> np.ndarray:
    if not isinstance(value, (np.ndarray, np.generic)):
        raise PartialTypeError(
            f"{where}: partials must be numpy arrays or dicts of arrays, got {type(value).__name__}"
        )
    arr = np.asarray(value)
    if arr.dtype.kind not in "biufc":
        raise PartialTypeError(f"{where}: partial arrays must be numeric, got dtype {arr.dtype}")
    return arr


def copy_if_shared(partial: Partial, buffer: np.ndarray) -> Partial:
    """``partial`` with every array that may share memory with ``buffer`` copied.

    ``map`` sees a reused shard buffer; a partial that is a view of it (``return shard[0]``) would
    change under the fold when the next shard is read. The test is on bounds only, so it is cheap.
    """
    if isinstance(partial, Mapping):
        if not any(np.may_share_memory(arr, buffer) for arr in partial.values()):
            return partial
        return {name: arr.copy() if np.may_share_memory(arr, buffer) else arr for name, arr in partial.items()}
    return partial.copy() if np.may_share_memory(partial, buffer) else partial


def layout(partial: Partial, varying: Collection[str] = ()) -> Layout:
    """The (name, dtype, shape) of every array; a ``varying`` name's first axis is written ``-1``."""
    pairs = sorted(partial.items()) if isinstance(partial, Mapping) else [(_BARE, partial)]
    return tuple((name, arr.dtype, (-1, *arr.shape[1:]) if name in varying and arr.ndim else arr.shape)
                 for name, arr in pairs)


def difference(got: Layout, expected: Layout) -> str:
    """What differs between two layouts, in words: ``'sum' has shape () (float64), expected (2,) (float64)``."""
    have = {name: (dtype, shape) for name, dtype, shape in got}
    want = {name: (dtype, shape) for name, dtype, shape in expected}
    if (_BARE in have) != (_BARE in want):
        return f"got {_kind(have)}, expected {_kind(want)}"
    words = [f"no key {name!r} (expected {_array(*want[name])})" for name in want if name not in have]
    for name, found in have.items():
        if name not in want:
            words.append(f"an extra key {name!r} ({_array(*found)})")
        elif found != want[name]:
            label = "the array" if name == _BARE else repr(name)
            words.append(f"{label} has {_array(*found)}, expected {_array(*want[name])[6:]}")
    return "; ".join(words)


def _kind(arrays: Mapping[str, tuple[np.dtype, tuple[int, ...]]]) -> str:
    if _BARE in arrays:
        return f"an array of {_array(*arrays[_BARE])}"
    return "a dict of " + ", ".join(repr(name) for name in arrays)


def _array(dtype: np.dtype, shape: tuple[int, ...]) -> str:
    text = "(" + ", ".join("*" if n < 0 else str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"
    return f"shape {text} ({dtype})"


class LayoutCheck:
    """The layout of one pass's partials (or of a multi-pass state) on this rank.

    The first value checked fixes the layout; a later one that differs is a :class:`JobError`
    naming the job file, who made the value, for which shards, and the difference. Names listed in
    ``varying`` may change their first axis (e.g. topk's kept values, fewer than k on a short shard).
    """

    def __init__(self, job: str, varying: Collection[str] = (), noun: str = "partial") -> None:
        self.job, self.varying, self.noun = job, frozenset(varying), noun
        self.expected: Layout | None = None
        self.origin = ""

    def check(self, value: Partial, where: str, made_by: str) -> None:
        """``where``: e.g. ``shard 7``; ``made_by``: e.g. ``map returned`` or ``rank 1 sent``."""
        got = layout(value, self.varying)
        if self.expected is None:
            self.expected, self.origin = got, where
        elif got != self.expected:
            raise JobError(f"{self.job}: {made_by} a different {self.noun} for {where} than for "
                           f"{self.origin}: {difference(got, self.expected)}")

    def leaf(self, shard: int, value: object, buffer: np.ndarray) -> Partial:
        """``map``'s result for ``shard``: checked, and copied where it is a view of ``buffer``."""
        partial = copy_if_shared(check_partial(value, f"{self.job}: map"), buffer)
        self.check(partial, f"shard {shard}", "map returned")
        return partial


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
