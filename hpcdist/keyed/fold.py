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
from hpcdist.keyed._merge import Union, align, move, place, union
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

    ``combine`` is called once, vectorised, in the layout of the side with more keys (``own``):
    the other side is aligned to it in a buffer kept between merges, and where ``own`` has a key
    the other lacks, the row is filled with ``own``'s and its combined value thrown away (combine
    is elementwise, so no key's bits depend on its neighbours). Then keys one side holds are
    copied from it. With 10^6 keys nearly all shared, this writes each field about three times
    where gathering both sides, combining and scattering back wrote it five."""
    scratch = _Scratch()

    def merge(a: Keyed, b: Keyed) -> Keyed:
        ka, kb = a[KEYS], b[KEYS]
        if len(kb) == 0:
            return a
        if len(ka) == 0:
            return b
        u = union(ka, kb)
        if len(u.pa) == 0:
            return _assemble(u, a, b, None, None, scratch)
        if len(u.pa) == len(ka) == len(kb):                    # the same keys: no alignment
            return _assemble(u, a, b, combine(_values(a), _values(b)), "a", scratch)
        big_a = len(ka) >= len(kb)
        own, other = (a, b) if big_a else (b, a)
        rows = np.full(len(own[KEYS]), -1, np.int64)
        rows[u.pa if big_a else u.pb] = u.pb if big_a else u.pa
        aligned = scratch.aligned(other, rows, own)
        both = combine(_values(a), aligned) if big_a else combine(aligned, _values(b))
        return _assemble(u, a, b, both, "a" if big_a else "b", scratch)
    return merge


def _assemble(u: Union, a: Keyed, b: Keyed, both: Mapping[str, np.ndarray] | None, layout: str | None,
              scratch: "_Scratch") -> Keyed:
    """The merged partial: ``both`` (combine's results in the ``layout`` side's rows, None when
    no key is shared) where the keys are shared, each side's own rows where only it has the key."""
    out: Keyed = {KEYS: u.keys}
    own_at = np.empty(0, np.int64)
    if layout is not None:                  # where each of the layout side's rows goes
        side = a if layout == "a" else b
        own_at = np.empty(len(side[KEYS]), np.int64)
        own_at[u.a_only if layout == "a" else u.b_only] = u.a_at if layout == "a" else u.b_at
        own_at[u.pa if layout == "a" else u.pb] = u.both_at
    taken: list[np.ndarray] = []
    for name, ref in a.items():
        if name == KEYS:
            continue
        arr = None
        if both is not None:
            if name not in both:
                raise JobError(f"combine returned no {name!r} (it returned {sorted(both)})")
            got = np.asarray(both[name])
            if len(own_at) == len(u.keys) and got.dtype == ref.dtype and got.flags.c_contiguous \
                    and got.shape == (len(u.keys),) + ref.shape[1:] and not _aliased(got, a, b, scratch, taken):
                arr = got                   # already the union's layout: one-side rows fixed in place
            else:
                arr = np.empty((len(u.keys),) + ref.shape[1:], dtype=ref.dtype)
                place(arr, own_at, got)
            taken.append(arr)
        else:
            arr = np.empty((len(u.keys),) + ref.shape[1:], dtype=ref.dtype)
        move(arr, u.a_at, ref, u.a_only)    # a key one side holds: that side's row (also where
        move(arr, u.b_at, b[name], u.b_only)    # the layout side's filler was combined)
        out[name] = arr
    return out


def _aliased(got: np.ndarray, a: Keyed, b: Keyed, scratch: "_Scratch", taken: list[np.ndarray]) -> bool:
    """Does combine's result share memory with an input, the scratch or another result?"""
    return scratch.holds(got) or any(np.may_share_memory(got, arr) for p in (a, b) for arr in p.values()) \
        or any(np.may_share_memory(got, t) for t in taken)


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
    """combine's aligned input, one buffer per field, kept between merges (with 10^6 keys, fresh
    ones were most of a merge's time). A result that is a view of one (combine returned its
    input) is copied before it becomes a node."""

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def aligned(self, other: Keyed, rows: np.ndarray, own: Keyed) -> Keyed:
        """``other``'s values in ``own``'s rows (``rows[i]``: other's row, or -1 for own's filler)."""
        out = {}
        for name, arr in other.items():
            if name == KEYS:
                continue
            buf = self.buffers.get(name)
            if buf is None or buf.dtype != arr.dtype or buf.shape[1:] != arr.shape[1:] or len(buf) < len(rows):
                buf = np.empty((len(rows) + len(rows) // 4,) + arr.shape[1:], dtype=arr.dtype)
                self.buffers[name] = buf
            mine = own[name] if own[name].dtype == arr.dtype else own[name].astype(arr.dtype)
            out[name] = align(arr, rows, mine, buf[:len(rows)])
        return out

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
