"""The shard plan: a function of the data alone, chunk-aligned, covering every row exactly once."""

import pytest

from hpcdist.shards import ShardPlan, auto_shard_rows, plan_shards


@pytest.mark.parametrize("rows,shard_rows", [(1, 1), (10, 3), (10, 10), (10, 20), (1_000_003, 4096)])
def test_shards_cover_every_row_once_in_order(rows, shard_rows):
    plan = plan_shards(rows, 8, shard_rows=shard_rows)
    covered = [plan.bounds(s) for s in range(plan.shards)]
    assert covered[0][0] == 0 and covered[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:]))
    assert all(stop > start for start, stop in covered)


@pytest.mark.parametrize("shards,ranks", [(1, 1), (1, 4), (3, 7), (10, 3), (123, 2), (5, 5)])
def test_static_blocks_give_each_shard_to_exactly_one_rank(shards, ranks):
    plan = ShardPlan(rows=shards, shard_rows=1)
    owned = [s for r in range(ranks) for s in plan.block(r, ranks)]
    assert owned == list(range(shards))   # contiguous and in rank order: ranks can fold subtrees


def test_fewer_shards_than_ranks_leaves_some_ranks_without_work():
    plan = ShardPlan(rows=2, shard_rows=1)
    sizes = [len(plan.block(r, 5)) for r in range(5)]
    assert sorted(sizes) == [0, 0, 0, 1, 1]


def test_auto_shard_size_depends_on_the_data_not_the_rank_count():
    # the signature has no rank count at all: that is the guarantee
    rows = auto_shard_rows(rows=50_000_000, row_bytes=32, chunk_rows=1000)
    assert rows % 1000 == 0
    assert 1 << 20 <= rows * 32 <= 4 << 20


def test_auto_shards_are_chunk_aligned_and_small_data_still_splits():
    assert auto_shard_rows(rows=1_000_000, row_bytes=8, chunk_rows=4096) % 4096 == 0
    assert plan_shards(1_000_000, 8).shards >= 16


def test_shard_never_larger_than_the_data():
    assert plan_shards(rows=5, row_bytes=8, chunk_rows=4096).shard_rows == 5


def test_offsets_beyond_2_to_the_31_do_not_overflow():
    plan = plan_shards(rows=3_000_000_000, row_bytes=8, shard_rows=1 << 20)
    start, stop = plan.bounds(plan.shards - 1)
    assert stop == 3_000_000_000 and start == (plan.shards - 1) << 20
    assert sum(len(plan.block(r, 10_000)) for r in range(0, 10_000, 1)) == plan.shards


def test_keyed_jobs_get_fewer_bigger_shards_but_small_data_still_splits():
    rows, row_bytes = 10**8, 24                                      # 2.4 GB: ~150 MB shards, not 4 MB
    keyed, plain = plan_shards(rows, row_bytes, keyed=True), plan_shards(rows, row_bytes)
    assert 64 << 20 < keyed.shard_rows * row_bytes < 256 << 20
    assert keyed.shards == 16 and plain.shards > 500                 # a power of two: 2, 4, 8 ranks
    assert plan_shards(10**6, 24, keyed=True).shards == 16           # hold whole tree nodes
    chunked = plan_shards(10**8, 24, chunk_rows=32768, keyed=True)   # whole chunks, never 17 shards
    assert chunked.shard_rows % 32768 == 0 and chunked.shards == 16
    assert plan_shards(1000, 24, keyed=True).shards == 1             # 24 KB: no shard under 256 KB
