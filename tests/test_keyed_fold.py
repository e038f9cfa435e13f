"""Reduce by key without MPI: per-key folds over the shard tree, partitions and exchange rounds."""

import numpy as np
import pytest

from hpcdist.errors import JobError
from hpcdist.keyed.aggregate import BadKey, group_stats_of
from hpcdist.keyed.fold import KEYS, fold_nodes, keyed_combine, keyed_leaf, take
from hpcdist.keyed.partition import bounds, fixed_sample, local_sample, owners, splitters
from hpcdist.keyed.rounds import chunk_bytes, round_counts, rounds_needed
from hpcdist.shards import static_block
from hpcdist.tree import Fold


def combine(a, b):
    """Order-sensitive on purpose (floating point): any change of combine order changes bits."""
    return {"s": a["s"] * 1.0000001 + b["s"] / 3.0, "n": a["n"] + b["n"]}


def leaves(shards, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in range(shards):
        keys = np.unique(rng.integers(0, 60, rng.integers(0, 25)))
        out.append(keyed_leaf((keys, {"s": rng.normal(size=len(keys)), "n": np.ones(len(keys), np.int64)}), "t"))
    return out


def one_rank(parts, shards):
    fold = Fold(shards, keyed_combine(combine))
    for s, leaf in enumerate(parts):
        fold.push_leaf(s, leaf)
    return fold.root()


def many_ranks(parts, shards, ranks, order):
    """Each rank folds its shards (in ``order``), cuts its nodes at splitters; owners fold the slices."""
    merge = keyed_combine(combine)
    held = []
    for r in range(ranks):
        fold = Fold(shards, merge)
        for s in order(r):
            fold.add_leaf(s, parts[s])
        held.append(fold.nodes)
    cuts = np.array([10, 25, 41][: ranks - 1], dtype=np.int64)
    owned = []
    for owner in range(ranks):
        got = []
        for nodes in held:
            for level, index, p in nodes:
                b = bounds(p[KEYS], cuts, ranks)
                if b[owner + 1] > b[owner]:
                    got.append((level, index, take(p, slice(b[owner], b[owner + 1]))))
        root = fold_nodes(got, shards, merge)
        if root is not None:
            owned.append(root)
    return {name: np.concatenate([p[name] for p in owned]) for name in owned[0]}


@pytest.mark.parametrize("ranks", [2, 3, 4])
@pytest.mark.parametrize("shards", [1, 5, 13])
def test_each_keys_fold_is_the_same_at_any_rank_count_and_order(ranks, shards):
    parts = leaves(shards, seed=shards)
    expected = one_rank(parts, shards)
    rng = np.random.default_rng(ranks)
    stolen = rng.permutation(shards)
    for order in (lambda r: static_block(shards, r, ranks),                      # static blocks
                  lambda r: [int(s) for s in stolen if s % ranks == r]):          # dynamic: any order
        got = many_ranks(parts, shards, ranks, order)
        for name in expected:
            assert got[name].tobytes() == expected[name].tobytes(), name


def test_a_key_in_one_shard_passes_through_the_tree_unchanged():
    parts = [keyed_leaf((np.array([1]), {"s": np.array([0.5]), "n": np.array([1])}), "t"),
             keyed_leaf((np.array([2]), {"s": np.array([7.0]), "n": np.array([1])}), "t"),
             keyed_leaf((np.array([1]), {"s": np.array([0.25]), "n": np.array([1])}), "t")]
    root = one_rank(parts, 3)
    assert root[KEYS].tolist() == [1, 2]
    assert root["s"][1] == 7.0 and root["s"][0] == 0.5 * 1.0000001 + 0.25 / 3.0


def test_map_keyed_output_is_sorted_and_a_repeated_key_is_the_jobs_bug():
    leaf = keyed_leaf((np.array([5, -1, 3]), {"x": np.array([50.0, -10.0, 30.0])}), "job")
    assert leaf[KEYS].tolist() == [-1, 3, 5] and leaf["x"].tolist() == [-10.0, 30.0, 50.0]
    with pytest.raises(JobError, match="unique within a shard"):
        keyed_leaf((np.array([2, 1, 2]), {"x": np.zeros(3)}), "job")
    with pytest.raises(JobError, match="one row per key"):
        keyed_leaf((np.array([1, 2]), {"x": np.zeros(3)}), "job")


def test_a_keyed_partial_never_aliases_the_shard_buffer_that_the_next_shard_overwrites():
    buffer = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    own = np.array([7.0, 8.0, 9.0])
    leaf = keyed_leaf((np.array([1, 2, 3]), {"v": buffer[:, 1], "own": own}), "job", buffer)
    buffer[:] = -1.0                                                    # the next shard is read
    assert leaf["v"].tolist() == [10.0, 20.0, 30.0]
    assert leaf["own"] is own                                           # the job's own array: not copied


def test_splitters_balance_distinct_keys_and_owners_are_ranges():
    keys = np.unique(np.random.default_rng(0).integers(-10**12, 10**12, 100_000))
    samples = [local_sample(keys[r::4]) for r in range(4)]      # four ranks' distinct keys
    cuts = splitters(np.concatenate(samples), np.full(4 * len(samples[0]), len(keys) / 4 / len(samples[0])), 4)
    owner = owners(keys, cuts)
    assert np.all(np.diff(owner) >= 0)
    per_rank = np.bincount(owner, minlength=4)
    assert per_rank.min() > 0.8 * len(keys) / 4
    assert splitters(np.zeros(0, np.int64), np.zeros(0), 4).size == 0   # no key at all: rank 0 owns all


def test_every_rank_sends_rank_0_a_sample_of_one_size_and_the_splitters_do_not_change():
    rng = np.random.default_rng(5)
    keys = [np.unique(rng.integers(0, 10**6, n)) for n in (5, 3000, 0, 700)]
    samples = [local_sample(k) for k in keys]
    weights = [np.full(len(s), len(k) / max(1, len(s))) for s, k in zip(samples, keys)]
    plain = splitters(np.concatenate(samples), np.concatenate(weights), 4)
    fixed = [fixed_sample(s, w, 64) for s, w in zip(samples, weights)]
    assert all(len(s) == len(w) == 64 for s, w in fixed)
    padded = splitters(np.concatenate([s for s, _ in fixed]), np.concatenate([w for _, w in fixed]), 4)
    assert padded.tolist() == plain.tolist() and len(plain) == 3
    many, weight = fixed_sample(np.arange(1000)[::-1].copy(), np.ones(1000), 64)     # thinned
    assert len(many) == 64 and weight.sum() == 1000 and (np.diff(many) > 0).all()
    assert splitters(np.zeros(8, np.int64), np.zeros(8), 5).size == 0       # only padding: no key at all


def test_rounds_move_more_than_2_to_the_31_bytes_with_small_counts():
    sizes = np.array([3 * 2**31 + 5, 0, 2**31, 17], dtype=np.int64)
    chunk = chunk_bytes(2**30, 4)
    moved = np.zeros(4, dtype=np.int64)
    for k in range(rounds_needed(sizes, chunk)):
        counts, displs = round_counts(sizes, chunk, k)
        assert counts.max() < 2**31 and displs.max() < 2**31 and counts.sum() <= 2**30
        moved += counts
    assert moved.tolist() == sizes.tolist()


@pytest.mark.parametrize("low, high", [(-5, 40), (-2**40, 2**40)], ids=["dense ids", "sparse ids (hash table)"])
def test_group_kernel_matches_numpy_on_one_shard(low, high):
    rng = np.random.default_rng(3)
    pool = rng.integers(low, high, 45)
    for rows in (5000, 3000, 5000):                   # the kernel's buffers are reused between shards
        keys = rng.choice(pool, rows)
        values = rng.normal(size=(rows, 2))
        values[rng.random(values.shape) < 0.2] = np.nan
        values[keys == pool[7], 1] = np.nan                            # one group all NaN in one column
        shard = np.column_stack([values[:, 0], keys.astype(np.float64), values[:, 1]])   # key in column 1
        got_keys, got = group_stats_of(shard, 1)
        assert got_keys.tolist() == np.unique(keys).tolist()
        for i, k in enumerate(got_keys):
            for j in range(2):
                x = values[keys == k, j]
                x = x[~np.isnan(x)]
                assert got["count"][i, j] == len(x)
                if len(x):
                    assert got["min"][i, j] == x.min() and got["max"][i, j] == x.max()
                    np.testing.assert_allclose(got["sum"][i, j], x.sum(), rtol=1e-12)
                    np.testing.assert_allclose(got["m2"][i, j], ((x - x.mean()) ** 2).sum(), rtol=1e-9, atol=1e-12)
        assert got["count"][got_keys.tolist().index(pool[7]), 1] == 0


def test_key_columns_must_hold_integers():
    ok = group_stats_of(np.array([[1.0, 0.5], [-2.0, 0.5], [2.0**62, 0.5]]), 0)
    assert not isinstance(ok, BadKey) and ok[0].tolist() == [-2, 1, 2**62]
    for bad in (np.nan, np.inf, 0.5, 2.0**63):
        found = group_stats_of(np.array([[1.0, 0.0], [bad, 0.0]]), 0)
        assert isinstance(found, BadKey) and found.row == 1


def test_many_dense_keys_go_through_buckets_with_the_same_bits_as_one_pass(monkeypatch):
    import hpcdist.keyed.aggregate as aggregate
    rng = np.random.default_rng(8)
    rows = 200_000
    shard = np.column_stack([rng.normal(size=rows) * 1e3, rng.integers(0, 60_000, rows).astype(np.float64),
                             rng.normal(size=rows)])
    shard[rng.random(shard.shape) < 0.05] = np.nan
    shard[:, 1] = np.nan_to_num(shard[:, 1], nan=17.0)               # the key column: column 1
    with monkeypatch.context() as m:
        m.setattr(aggregate, "DIRECT_BYTES", 0)
        m.setattr(aggregate, "WINDOW_BYTES", 128 * 1024)            # 1,024-key windows: 59 buckets
        bucketed_keys, bucketed = group_stats_of(shard, 1)
    keys, direct = group_stats_of(shard, 1)                          # 60,000 keys: one direct pass
    assert keys.tolist() == bucketed_keys.tolist() == np.unique(shard[:, 1]).astype(np.int64).tolist()
    for name in direct:
        assert direct[name].tobytes() == bucketed[name].tobytes(), name


def test_a_shard_whose_keys_leave_the_last_shards_range_gives_the_bits_of_a_fresh_kernel():
    """The kernel tries each shard in one pass within the previous shard's key range; a key
    outside it (or a bad key) midway must leave no trace of the rows accumulated before it."""
    import hpcdist.keyed.aggregate as aggregate
    rng = np.random.default_rng(11)

    def shard(low, high):
        return np.column_stack([rng.integers(low, high, 4000).astype(np.float64), rng.normal(size=(4000, 2))])

    first, inside, leaves, sparse = shard(0, 100), shard(10, 90), shard(0, 100), shard(0, 100)
    leaves[3000, 0] = 500.0                                          # out of the range at row 3000
    sparse[2000, 0] = 2.0**40                                        # -> the hash path
    bad = inside.copy()
    bad[1000, 0] = 0.5
    for later in (inside, leaves, sparse, bad):
        group_stats_of(first, 0)                                     # remembers [0, 99]
        got = group_stats_of(later, 0)
        aggregate._WORK.span = None                                  # a fresh kernel: scans first
        want = group_stats_of(later, 0)
        if isinstance(want, BadKey):
            assert got == want
            continue
        assert got[0].tolist() == want[0].tolist() == np.unique(later[:, 0]).astype(np.int64).tolist()
        for name in want[1]:
            assert got[1][name].tobytes() == want[1][name].tobytes(), name


def _reference_merge(a, b, combine):
    """Key by key: the shared ones combined one at a time, the others copied."""
    out = {}
    rows_a = {int(k): i for i, k in enumerate(a[KEYS])}
    rows_b = {int(k): i for i, k in enumerate(b[KEYS])}
    for k in sorted(set(rows_a) | set(rows_b)):
        if k in rows_a and k in rows_b:
            one = combine({n: v[rows_a[k]:rows_a[k] + 1] for n, v in a.items() if n != KEYS},
                          {n: v[rows_b[k]:rows_b[k] + 1] for n, v in b.items() if n != KEYS})
            out[k] = {n: np.asarray(v)[0] for n, v in one.items()}
        else:
            src, i = (a, rows_a[k]) if k in rows_a else (b, rows_b[k])
            out[k] = {n: v[i] for n, v in src.items() if n != KEYS}
    return out


@pytest.mark.parametrize("chunk_rows", [None, 7], ids=["one chunk", "chunks of 7 keys"])
@pytest.mark.parametrize("sizes", [(40, 40), (60, 12), (12, 60), (30, 30)], ids=["same size", "left bigger",
                                                                                  "right bigger", "disjoint"])
def test_a_keyed_merge_equals_combining_key_by_key_bit_for_bit(sizes, chunk_rows, monkeypatch):
    import hpcdist.keyed.fold as fold
    if chunk_rows:                      # the shared keys combined in chunks: views and gathered rows
        monkeypatch.setattr(fold, "CHUNK_BYTES", 1)
        monkeypatch.setattr(fold, "MIN_CHUNK_ROWS", chunk_rows)
    rng = np.random.default_rng(sum(sizes))

    def part(n, lo):
        keys = np.sort(rng.choice(np.arange(lo, lo + 80), n, replace=False))
        return {KEYS: keys, "s": rng.normal(size=(n, 3)), "n": rng.integers(1, 9, n)}

    a = part(sizes[0], 0)
    b = part(sizes[1], 200 if sizes == (30, 30) else 0)
    before = [{n: v.copy() for n, v in p.items()} for p in (a, b)]

    def aliasing(x, y):                 # returns one input unchanged, and a float for an int field
        return {"s": x["s"] * 1.0000001 + y["s"] / 3.0, "n": (x["n"] + y["n"]).astype(np.float64) + 0.0}

    for job_combine in (lambda x, y: {"s": x["s"] * 1.0000001 + y["s"] / 3.0, "n": x["n"] + y["n"]},
                        aliasing, lambda x, y: {"s": x["s"], "n": y["n"]}):
        merged = keyed_combine(job_combine)(a, b)
        want = _reference_merge(a, b, job_combine)
        assert merged[KEYS].tolist() == sorted(want)
        for i, k in enumerate(merged[KEYS]):
            assert merged["s"][i].tobytes() == np.asarray(want[int(k)]["s"], np.float64).tobytes()
            assert merged["n"][i] == np.int64(want[int(k)]["n"]) and merged["n"].dtype == np.int64
        for p, kept in zip((a, b), before):                             # the inputs are untouched
            assert all(p[n].tobytes() == kept[n].tobytes() for n in kept)


def test_a_combine_that_drops_a_field_or_changes_the_row_count_is_the_jobs_bug():
    a = {KEYS: np.array([1, 2, 3]), "s": np.ones(3), "n": np.ones(3, np.int64)}
    b = {KEYS: np.array([2, 3, 4]), "s": np.ones(3), "n": np.ones(3, np.int64)}
    with pytest.raises(JobError, match="combine returned no 'n'"):
        keyed_combine(lambda x, y: {"s": x["s"]})(a, b)
    with pytest.raises(JobError, match="combine returned 's' of shape"):
        keyed_combine(lambda x, y: {"s": x["s"][:1], "n": x["n"]})(a, b)
    with pytest.raises(JobError, match="partial 'n' for some shards only"):
        keyed_combine(combine)(a, {KEYS: b[KEYS], "s": b["s"]})
