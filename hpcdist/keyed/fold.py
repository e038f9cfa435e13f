"""Keyed partials and their merge: why a key's result has the same bits at any rank count.

A keyed partial is a dict ``{KEYS: int64[n] (sorted, unique), name: array[n, ...]}``. Merging two
(``a`` covers earlier shards than ``b``) applies the job's ``combine`` to the keys both hold
(vectorised calls over chunks of them, rows aligned) and copies the keys only one side holds.
So each key is folded over the fixed shard tree of :mod:`hpcdist.tree` restricted to the shards
where it appears: an empty subtree passes the other child through. Which rank holds a node, and
which other keys share a call, never changes the floating-point operations done for a key
(combine is elementwise).
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import numpy as np

from hpcdist.errors import JobError
from hpcdist.keyed._merge import gather, move, place, union
from hpcdist.partials import Node
from hpcdist.tree import height, span

KEYS = "__keys__"
Keyed = dict[str, np.ndarray]
Combine = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


def keyed_leaf(value: object, where: str, shard: np.ndarray | None = None) -> Keyed:
    """``map_keyed``'s ``(keys, {name: array[n, ...]})`` as a keyed partial, sorted by key.

    A key seen twice in one shard, or arrays not aligned with the keys, is the job's bug. Arrays
    that are views of the ``shard`` buffer (reused for the next shard) are copied; without a
    buffer to check against, every array is."""
    if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], Mapping)):
        raise JobError(f"{where}: map_keyed must return (keys, {{name: array}}), got {type(value).__name__}")
    keys = np.asarray(value[0])
    if keys.ndim != 1 or keys.dtype.kind not in "iu":
        raise JobError(f"{where}: map_keyed keys must be a 1-D integer array, got {keys.dtype} {keys.shape}")
    keys = keys.astype(np.int64, copy=False)
    out: Keyed = {}
    for name, arr in value[1].items():
        arr = np.asarray(arr)
        if not isinstance(name, str) or not name or name == KEYS or arr.ndim < 1 or len(arr) != len(keys):
            raise JobError(f"{where}: map_keyed partial {name!r} must be an array with one row per key "
                           f"({len(keys)}), got shape {arr.shape}")
        if arr.dtype.kind not in "biufc":
            raise JobError(f"{where}: map_keyed partial {name!r} must be numeric, got {arr.dtype}")
        out[name] = arr
    order = None if _strictly_increasing(keys) else np.argsort(keys, kind="stable")
    if order is not None:
        keys = keys[order]
        if len(keys) > 1 and not np.all(keys[1:] > keys[:-1]):
            raise JobError(f"{where}: map_keyed keys must be unique within a shard")
        out = {name: arr[order] for name, arr in out.items()}
    else:
        out = {name: _own(arr, shard) for name, arr in out.items()}   # never a view of the shard buffer
    return {KEYS: _own(keys, shard), **out}


def _own(arr: np.ndarray, shard: np.ndarray | None) -> np.ndarray:
    return np.array(arr) if shard is None or np.may_share_memory(arr, shard) else arr


def _strictly_increasing(keys: np.ndarray) -> bool:
    return len(keys) < 2 or bool(np.all(keys[1:] > keys[:-1]))


def take(partial: Mapping[str, np.ndarray], index: np.ndarray | slice) -> Keyed:
    """The rows ``index`` of every array (keys included)."""
    return {name: arr[index] for name, arr in partial.items()}


def empty_like(partial: Mapping[str, np.ndarray]) -> Keyed:
    """No keys, the same names, dtypes and trailing shapes."""
    return take(partial, slice(0, 0))


def keyed_combine(combine: Combine) -> Callable[[Keyed, Keyed], Keyed]:
    """The merge of two keyed partials with the job's ``combine`` (for :class:`hpcdist.tree.Fold`).

    The merged arrays are made once in the union's layout: keys one side holds are copied from
    it, and the keys both hold go through ``combine`` a chunk at a time (about 1 MB per field:
    their rows gathered into small buffers kept between merges, or taken as views where they are
    consecutive), each chunk's results copied to their rows. ``combine`` is elementwise, so no
    key's bits depend on the chunk it shares. With 10^6 keys this keeps no second copy of a node
    (the whole-node combine made its results, then the union's arrays, beside an aligned copy of
    one side) and the chunks stay in the caches."""
    buffers = _ChunkBuffers()

    def merge(a: Keyed, b: Keyed) -> Keyed:
        ka, kb = a[KEYS], b[KEYS]
        if len(kb) == 0:
            return a
        if len(ka) == 0:
            return b
        u = union(ka, kb)
        out: Keyed = {KEYS: u.keys}
        for name, ref in a.items():
            if name == KEYS:
                continue
            if name not in b:
                raise JobError(f"map_keyed gave partial {name!r} for some shards only")
            arr = np.empty((len(u.keys),) + ref.shape[1:], dtype=ref.dtype)
            move(arr, u.a_at, ref, u.a_only)
            move(arr, u.b_at, b[name], u.b_only)
            out[name] = arr
        step = _chunk_rows(out)
        for lo in range(0, len(u.pa), step):
            hi = min(lo + step, len(u.pa))
            both = combine(buffers.rows(a, u.pa[lo:hi], "a"), buffers.rows(b, u.pb[lo:hi], "b"))
            for name, arr in out.items():
                if name == KEYS:
                    continue
                if name not in both:
                    raise JobError(f"combine returned no {name!r} (it returned {sorted(both)})")
                got = np.asarray(both[name])
                if got.shape[:1] != (hi - lo,):
                    raise JobError(f"combine returned {name!r} of shape {got.shape} for {hi - lo} keys")
                place(arr, u.both_at[lo:hi], got)
        return out
    return merge


CHUNK_BYTES = 1 << 20           # per field, of the keys both sides hold: combined a chunk at a time
MIN_CHUNK_ROWS = 1024           # (a call of combine costs tens of microseconds)


def _chunk_rows(partial: Keyed) -> int:
    widest = max(arr[:1].nbytes for arr in partial.values())
    return max(MIN_CHUNK_ROWS, CHUNK_BYTES // max(1, widest))


class _ChunkBuffers:
    """One chunk of each side's rows, per field, kept between merges."""

    def __init__(self) -> None:
        self.buffers: dict[tuple[str, str], np.ndarray] = {}

    def rows(self, partial: Keyed, index: np.ndarray, side: str) -> Keyed:
        """``partial``'s rows ``index`` (ascending): views when they are consecutive."""
        if len(index) and index[-1] - index[0] == len(index) - 1:
            first = int(index[0])
            return {name: arr[first:first + len(index)] for name, arr in partial.items() if name != KEYS}
        out = {}
        for name, arr in partial.items():
            if name == KEYS:
                continue
            buf = self.buffers.get((side, name))
            if buf is None or buf.dtype != arr.dtype or buf.shape[1:] != arr.shape[1:] or len(buf) < len(index):
                buf = np.empty((len(index),) + arr.shape[1:], dtype=arr.dtype)
                self.buffers[(side, name)] = buf
            out[name] = gather(arr, index, buf[:len(index)])
        return out


def rehearse(leaf: Keyed, merge: Callable[[Keyed, Keyed], Keyed]) -> None:
    """Run every path of ``merge`` once on a (tiny) leaf: with itself (all keys shared, as
    views), with a copy whose first key moved past the last (keys moved from either side), and
    with a copy missing a middle key (shared rows gathered), so the merge's numba kernels and the
    job's combine are loaded (or compiled) in the warm-up, not in the middle of the map phase."""
    keys = leaf[KEYS]
    if len(keys) == 0:
        return
    merge(leaf, leaf)
    if len(keys) >= 3:
        merge(leaf, take(leaf, np.arange(len(keys)) != len(keys) // 2))
    if keys[-1] == np.iinfo(np.int64).max:
        return
    rolled = {name: np.concatenate([arr[1:], arr[:1]]) for name, arr in leaf.items()}
    rolled[KEYS][-1] = keys[-1] + 1
    merge(leaf, rolled)


def fold_nodes(nodes: Iterable[Node], shards: int, merge: Callable[[Keyed, Keyed], Keyed]) -> Keyed | None:
    """The tree's root over disjoint nodes given in any order; an absent subtree is empty.

    An owner rank receives only the node slices that hold its keys, so holes are normal: a node
    with one empty child is its other child, exactly as in the full tree. None: no node at all."""
    held = {(level, index): partial for level, index, partial in nodes}
    if not held:
        return None
    starts = sorted((span(lv, ix, shards)[0], lv, ix) for lv, ix in held)
    firsts = np.array([s for s, _, _ in starts], dtype=np.int64)

    def value(level: int, index: int) -> Keyed | None:
        if (level, index) in held:
            return held[(level, index)]
        first, stop = span(level, index, shards)
        lo = int(np.searchsorted(firsts, first))
        if level == 0 or lo == len(firsts) or firsts[lo] >= stop:
            return None
        left, right = value(level - 1, 2 * index), value(level - 1, 2 * index + 1)
        if left is None or right is None:
            return left if right is None else right
        return merge(left, right)

    return value(height(shards), 0)
