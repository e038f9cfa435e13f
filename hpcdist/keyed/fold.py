"""Keyed partials and their merge: why a key's result has the same bits at any rank count.

A keyed partial is a dict ``{KEYS: int64[n] (sorted, unique), name: array[n, ...]}``. Merging two
(``a`` covers earlier shards than ``b``) applies the job's ``combine`` to the keys both hold (one
vectorised call, rows aligned) and copies the keys only one side holds. So each key is folded over
the fixed shard tree of :mod:`hpcdist.tree` restricted to the shards where it appears: an empty
subtree passes the other child through. Which rank holds a node, and which other keys share a
call, never changes the floating-point operations done for a key (combine is elementwise).
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

    Every output row is written once: a key one side holds is copied, a key both hold is their
    ``combine`` (one vectorised call over all such keys; a side whose every key is shared is
    passed whole, without gathering, and the others are gathered into buffers reused from merge
    to merge: with 10^6 keys, fresh ones were most of a merge's time)."""
    scratch = _Scratch()

    def merge(a: Keyed, b: Keyed) -> Keyed:
        ka, kb = a[KEYS], b[KEYS]
        if len(kb) == 0:
            return a
        if len(ka) == 0:
            return b
        u = union(ka, kb)
        both = {}
        if len(u.pa):
            both = combine(scratch.shared("a", a, u.pa), scratch.shared("b", b, u.pb))
        whole = len(u.both_at) == len(u.keys)
        out: Keyed = {KEYS: u.keys}
        for name, arr_a in a.items():
            if name == KEYS:
                continue
            got = None
            if len(u.pa):
                if name not in both:
                    raise JobError(f"combine returned no {name!r} (it returned {sorted(both)})")
                got = np.asarray(both[name])
                if whole and got.dtype == arr_a.dtype and got.shape == arr_a.shape and got.flags.c_contiguous \
                        and not scratch.holds(got):
                    out[name] = got
                    continue
            arr = np.empty((len(u.keys),) + arr_a.shape[1:], dtype=arr_a.dtype)
            move(arr, u.a_at, arr_a, u.a_only)
            move(arr, u.b_at, b[name], u.b_only)
            if got is not None:
                place(arr, u.both_at, got)
            out[name] = arr
        return out
    return merge


def rehearse(leaf: Keyed, merge: Callable[[Keyed, Keyed], Keyed]) -> None:
    """Run every path of ``merge`` once on a (tiny) leaf: with itself (all keys shared), and with
    a copy whose first key moved past the last (keys gathered, moved from either side, combined
    and placed), so the merge's numba kernels and the job's combine are loaded (or compiled) in
    the warm-up, not in the middle of the map phase."""
    keys = leaf[KEYS]
    if len(keys) == 0:
        return
    merge(leaf, leaf)
    if keys[-1] == np.iinfo(np.int64).max:
        return
    rolled = {name: np.concatenate([arr[1:], arr[:1]]) for name, arr in leaf.items()}
    rolled[KEYS][-1] = keys[-1] + 1
    merge(leaf, rolled)


class _Scratch:
    """combine's gathered inputs, one buffer per side and field, kept between merges. A result
    that is a view of one (combine returned its input) is copied before it becomes a node."""

    def __init__(self) -> None:
        self.buffers: dict[tuple[str, str], np.ndarray] = {}

    def shared(self, side: str, partial: Keyed, rows: np.ndarray) -> Keyed:
        """The values of the keys at ``rows`` (every key: the partial itself)."""
        if len(rows) == len(partial[KEYS]):
            return _values(partial)
        return {name: self._gather((side, name), arr, rows) for name, arr in partial.items() if name != KEYS}

    def _gather(self, slot: tuple[str, str], src: np.ndarray, rows: np.ndarray) -> np.ndarray:
        buf = self.buffers.get(slot)
        if buf is None or buf.dtype != src.dtype or buf.shape[1:] != src.shape[1:] or len(buf) < len(rows):
            buf = np.empty((len(rows) + len(rows) // 4,) + src.shape[1:], dtype=src.dtype)
            self.buffers[slot] = buf
        return gather(src, rows, buf[:len(rows)])

    def holds(self, arr: np.ndarray) -> bool:
        return any(np.may_share_memory(arr, buf) for buf in self.buffers.values())


def _values(partial: Keyed) -> Keyed:
    return {name: arr for name, arr in partial.items() if name != KEYS}


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
