"""The fixed-order reduction tree over shard indices: the reason results have the same bits.

Shards ``0..S-1`` are the leaves. Node ``(level, k)`` covers shards ``[k*2**level, (k+1)*2**level)``
clipped to ``S``; it is ``combine(left, right)`` of its two children, or just the left child when the
right one lies wholly past ``S``. The tree's shape depends on ``S`` alone, so whichever rank computes
a node, at whatever rank count or after whatever restart, the same floating-point operations happen
in the same order. A rank holding any set of shards folds every complete node it can; what is left
(its *frontier*) is O(log S) nodes, which is all it ever has to send or checkpoint.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from hpcdist.partials import LayoutCheck, Node, Partial

Combine = Callable[[Partial, Partial], Partial]


def height(shards: int) -> int:
    """The root's level: the smallest h with 2**h >= shards."""
    return max(0, (shards - 1).bit_length())


def span(level: int, index: int, shards: int) -> tuple[int, int]:
    """The shards ``[first, stop)`` under node ``(level, index)``."""
    first = index << level
    return first, min((index + 1) << level, shards)


def shards_under(keys: Iterable[tuple[int, int]], shards: int) -> list[int]:
    """Every shard under the nodes ``(level, index)`` of ``keys`` (disjoint nodes), in order."""
    return sorted(s for level, index in keys for s in range(*span(level, index, shards)))


def count_under(keys: Iterable[tuple[int, int]], shards: int) -> int:
    """How many shards the disjoint nodes ``(level, index)`` of ``keys`` cover."""
    return sum(stop - first for first, stop in (span(level, index, shards) for level, index in keys))


def count_under_arrays(levels: np.ndarray, indices: np.ndarray, shards: int) -> int:
    """:func:`count_under` of the nodes ``(levels[i], indices[i])`` in numpy: a checkpoint's 10,000 nodes at once."""
    levels, indices = np.asarray(levels, dtype=np.int64), np.asarray(indices, dtype=np.int64)
    first = indices << levels
    return int((np.minimum((indices + 1) << levels, shards) - first).sum())


def outermost(nodes: list[Node]) -> list[Node]:
    """Drop every node that lies under another node of the list (and duplicates), in shard order.

    Snapshots of different ranks taken at different moments overlap only by nesting, so the
    outermost nodes of their union count every finished shard exactly once. Vectorised over the
    levels (rank 0 runs it on every snapshot union: ~25,000 nodes at 8,000 ranks)."""
    if not nodes:
        return []
    level = np.fromiter((n[0] for n in nodes), dtype=np.int64, count=len(nodes))
    index = np.fromiter((n[1] for n in nodes), dtype=np.int64, count=len(nodes))
    first = np.unique(_code(level, index), return_index=True)[1]       # duplicates: the first one
    level, index = level[first], index[first]
    codes = np.sort(_code(level, index))
    covered = np.zeros(len(level), dtype=bool)
    for up in range(1, int(level.max() - level.min()) + 1):
        above = _code(level + up, index >> up)
        at = np.minimum(np.searchsorted(codes, above), len(codes) - 1)
        covered |= codes[at] == above
    keep = first[~covered]
    order = np.argsort(index[~covered] << level[~covered], kind="stable")
    return [nodes[i] for i in keep[order]]


def _code(level: np.ndarray, index: np.ndarray) -> np.ndarray:
    """One int64 per node (levels < 64, indices < 2**57)."""
    return (level << 57) | index


def describe(level: int, index: int, shards: int) -> str:
    """The shards under a node in words, for messages: ``shard 7`` or ``shards [8, 12)``."""
    first, stop = span(level, index, shards)
    return f"shard {first}" if stop - first == 1 else f"shards [{first}, {stop})"


class Fold:
    """A sorted stack of disjoint tree nodes that combines siblings as soon as both are present.

    Push leaves (or whole nodes) in increasing shard order; ``merge`` takes nodes in any order.
    With a ``check``, every combine result must keep the partials' layout.
    """

    def __init__(self, shards: int, combine: Combine, check: LayoutCheck | None = None) -> None:
        self.shards = shards
        self.combine = combine
        self.check = check
        self.top = height(shards)
        self.nodes: list[Node] = []

    def push_leaf(self, shard: int, partial: Partial) -> None:
        self.push((0, shard, partial))

    def push(self, node: Node) -> None:
        """Add a node that starts after every node held; fold what becomes complete."""
        if self.nodes:
            last_level, last_index, _ = self.nodes[-1]
            if span(node[0], node[1], self.shards)[0] < span(last_level, last_index, self.shards)[1]:
                raise ValueError(f"node {node[:2]} pushed out of order after {(last_level, last_index)}")
        self.nodes.append(node)
        self._settle()

    def add_leaf(self, shard: int, partial: Partial) -> None:
        """Add a leaf in any order (a dynamic schedule's stolen shards): pushed when it comes after
        every node held, merged otherwise. The tree, and so every combine, is the same either way."""
        if self.nodes and shard < span(*self.nodes[-1][:2], self.shards)[1]:
            self.merge([(0, shard, partial)])
        else:
            self.push_leaf(shard, partial)

    def merge(self, nodes: Iterable[Node]) -> None:
        """Add nodes from elsewhere (another rank, a checkpoint), in any order."""
        combined = sorted([*self.nodes, *nodes], key=lambda n: span(n[0], n[1], self.shards)[0])
        self.nodes = []
        for node in combined:
            self.push(node)

    def _settle(self) -> None:
        nodes, shards = self.nodes, self.shards
        while nodes:
            level, index, partial = nodes[-1]
            if level < self.top and index % 2 == 0 and (index + 1) << level >= shards:
                nodes[-1] = (level + 1, index // 2, partial)   # right child is empty: promote
                continue
            if index % 2 == 1 and len(nodes) >= 2 and nodes[-2][:2] == (level, index - 1):
                left = nodes[-2][2]
                del nodes[-2:]
                merged = self.combine(left, partial)
                if self.check is not None:
                    self.check.check(merged, describe(level + 1, index // 2, shards), "combine returned")
                nodes.append((level + 1, index // 2, merged))
                continue
            break

    @property
    def done(self) -> bool:
        """True when the whole tree is folded into its root."""
        return len(self.nodes) == 1 and self.nodes[0][:2] == (self.top, 0)

    def root(self) -> Partial:
        if not self.done:
            held = [n[:2] for n in self.nodes]
            raise ValueError(f"tree over {self.shards} shards is incomplete; holding {held}")
        return self.nodes[0][2]

    def covered(self) -> int:
        """How many shards the held nodes cover."""
        return count_under(((lv, ix) for lv, ix, _ in self.nodes), self.shards)
