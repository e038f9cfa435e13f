"""The reduction tree: its shape depends only on the shard count, never on who folds what."""

import random

import pytest

from hpcdist.tree import Fold, height, outermost, span


def combine(a, b):
    return f"({a}+{b})"


def root_of(shards):
    fold = Fold(shards, combine)
    for s in range(shards):
        fold.push_leaf(s, str(s))
    return fold.root()


def expected(shards):
    """Node (h, 0) of the tree of size `shards`, built from aligned nodes."""
    def node(level, index):
        first, stop = span(level, index, shards)
        if level == 0:
            return str(first)
        left = node(level - 1, 2 * index)
        right_first = span(level - 1, 2 * index + 1, shards)[0]
        return left if right_first >= shards else f"({left}+{node(level - 1, 2 * index + 1)})"
    return node(height(shards), 0)


@pytest.mark.parametrize("shards", [1, 2, 3, 5, 8, 13, 64, 100])
def test_streaming_fold_builds_the_fixed_tree(shards):
    assert root_of(shards) == expected(shards)


@pytest.mark.parametrize("seed", range(30))
def test_any_split_into_contiguous_ranges_gives_the_same_tree(seed):
    rng = random.Random(seed)
    shards = rng.randint(1, 200)
    ranks = rng.randint(1, 12)
    cuts = sorted(rng.randint(0, shards) for _ in range(ranks - 1))
    bounds = list(zip([0, *cuts], [*cuts, shards]))
    folds = []
    for first, stop in bounds:
        fold = Fold(shards, combine)
        for s in range(first, stop):
            fold.push_leaf(s, str(s))
        assert len(fold.nodes) <= 2 * height(shards) + 1   # O(log S) frontier per rank
        folds.append(fold)
    order = list(range(len(folds)))
    rng.shuffle(order)                 # frontiers may arrive in any order
    total = Fold(shards, combine)
    for i in order:
        total.merge(folds[i].nodes)
    assert total.root() == expected(shards)


@pytest.mark.parametrize("seed", range(10))
def test_scattered_shards_merge_to_the_same_tree(seed):
    rng = random.Random(seed)
    shards = rng.randint(1, 120)
    owner = [rng.randrange(4) for _ in range(shards)]   # not contiguous: dynamic claims, restarts
    parts = []
    for r in range(4):
        fold = Fold(shards, combine)
        fold.merge([(0, s, str(s)) for s in range(shards) if owner[s] == r])
        parts.append(fold.nodes)
    total = Fold(shards, combine)
    for nodes in parts:
        total.merge(nodes)
    assert total.root() == expected(shards)


def test_incomplete_tree_refuses_to_give_a_root():
    fold = Fold(4, combine)
    fold.push_leaf(0, "0")
    fold.push_leaf(2, "2")
    with pytest.raises(ValueError, match="incomplete"):
        fold.root()
    assert fold.covered() == 2


def test_leaves_pushed_out_of_order_are_rejected():
    fold = Fold(8, combine)
    fold.push_leaf(3, "3")
    with pytest.raises(ValueError, match="out of order"):
        fold.push_leaf(1, "1")


def test_ten_thousand_ranks_need_only_log_sized_frontiers():
    shards, ranks = 1_000_000, 10_000
    worst = 0
    for r in range(0, ranks, 97):
        first, stop = r * shards // ranks, (r + 1) * shards // ranks
        fold = Fold(shards, lambda a, b: None)
        for s in range(first, stop):
            fold.push_leaf(s, None)
        worst = max(worst, len(fold.nodes))
    assert worst <= 2 * height(shards)


def test_the_union_of_many_ranks_snapshots_keeps_each_finished_shard_exactly_once():
    rng = random.Random(4)
    shards = 5000
    nodes = []
    for _ in range(25_000):                 # any node, its ancestors and descendants, duplicates
        level = rng.randrange(0, 10)
        nodes.append((level, rng.randrange(0, -(-shards >> level) or 1), None))
    got = outermost(nodes)
    keys = {(lv, ix) for lv, ix, _ in nodes}
    want = sorted({(lv, ix) for lv, ix in keys
                   if not any((lv + up, ix >> up) in keys for up in range(1, 12))}, key=lambda k: k[1] << k[0])
    assert [(lv, ix) for lv, ix, _ in got] == want
    covered = [s for lv, ix, _ in got for s in range(ix << lv, (ix + 1) << lv)]
    assert len(covered) == len(set(covered))
