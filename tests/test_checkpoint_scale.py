"""Checkpoints at 10,000 ranks: every saved tree node in one table, written and read back bit for bit."""

import gc
import sys
import sysconfig
from collections import Counter

import h5py
import numpy as np
import pytest

from hpcdist.checkpoint import Checkpoint, CheckpointWriter, load, save
from hpcdist.checkpoint.store import CorruptCheckpoint, read
from hpcdist.timings import RankProgress

STDLIB = sysconfig.get_paths()["stdlib"]
PACKAGES = (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])
FP = {"job": "j", "params": {}, "input": {"input": "x.h5:/x", "mtime_ns": 1}, "shards": 10_000,
      "shard_rows": 10, "job_sha256": "ab", "hpcdist_version": "0"}


def _checkpoint(nodes):
    return Checkpoint(fingerprint=FP, pass_index=0, nodes=nodes, generation=1, ranks=10_000,
                      rank_shards=[1] * 10_000, rank_busy_s=[0.5] * 10_000)


def test_ten_thousand_nodes_round_trip_in_a_fixed_number_of_datasets(tmp_path):
    rng = np.random.default_rng(7)
    # a stats-like partial per node: moments, a histogram, a scalar count and a variable-length first axis
    nodes = [(0, i, {"sum": rng.random(3), "hist": rng.integers(0, 99, (2, 4)).astype(np.int64),
                     "n": np.asarray(i, np.int64), "top": rng.random((i % 3, 2))}) for i in range(10_000)]
    path = str(tmp_path / "c.h5")
    save(path, _checkpoint(nodes))
    got, warnings = load(path)
    assert warnings == [] and got.shards_done() == 10_000 and len(got.nodes) == 10_000
    for (l0, i0, p0), (l1, i1, p1) in zip(nodes, got.nodes):
        assert (l0, i0) == (l1, i1) and sorted(p0) == sorted(p1)
        for k in p0:
            assert p0[k].dtype == p1[k].dtype and p0[k].shape == p1[k].shape and p0[k].tobytes() == p1[k].tobytes()
    with h5py.File(path) as f:
        names = []
        f.visit(names.append)
    assert len(names) < 30      # level, index, and data + shape + node per field: not a group per node


def test_bare_array_nodes_and_no_nodes_round_trip(tmp_path):
    path = str(tmp_path / "c.h5")
    save(path, _checkpoint([(3, 1, np.arange(4.0)), (0, 16, np.arange(4.0) + 0.5)]))
    nodes = read(path).nodes
    assert [(lv, ix) for lv, ix, _ in nodes] == [(3, 1), (0, 16)]
    assert nodes[1][2].tobytes() == (np.arange(4.0) + 0.5).tobytes() and not isinstance(nodes[1][2], dict)
    save(path, _checkpoint([]))
    assert read(path).nodes == []


def test_a_format_1_checkpoint_is_refused_in_one_line(tmp_path):
    path = str(tmp_path / "c.h5")
    save(path, _checkpoint([(0, 0, np.arange(2.0))]))
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 1
    with pytest.raises(CorruptCheckpoint, match=r"^checkpoint format 1, written by another hpcdist version; "
                                                r"this one reads format 2$"):
        read(path)


def _stats_node(level, index, rng):
    """What the stats job's rank 0 holds per node: 8 fields, 0-d to 4 x 64, float64 and int64."""
    return (level, index, {"count": rng.integers(0, 9, 4), "sum": rng.random(4), "m2": rng.random(4),
                           "hist": rng.integers(0, 99, (4, 64)), "n": np.asarray(rng.integers(9)),
                           "big": np.asarray([2**62 + 1, -(2**53) - 1], dtype=np.int64),
                           "f32": rng.random(3).astype(np.float32), "nan": np.asarray([np.nan, -0.0])})


def _same_bits(a, b):
    return type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_ten_thousand_stats_nodes_given_in_any_order_come_back_bit_for_bit_in_shard_order(tmp_path):
    rng = np.random.default_rng(3)
    # the disjoint nodes of a 40,000-shard tree: 10,000 pairs of leaves folded one level up, given backwards
    nodes = [_stats_node(1, k, rng) for k in reversed(range(10_000))]
    fp = {**FP, "shards": 20_000}
    path = str(tmp_path / "c.h5")
    save(path, Checkpoint(fingerprint=fp, pass_index=0, nodes=nodes, generation=1, ranks=3))
    got = read(path)
    assert got.shards_done() == 20_000 and [n[:2] for n in got.nodes] == [(1, k) for k in range(10_000)]
    for (_, _, want), (_, _, back) in zip(reversed(nodes), got.nodes):
        assert list(back) == sorted(want) and all(_same_bits(want[k], back[k]) for k in want)
    with h5py.File(path) as f:
        assert f.attrs["shards_done"] == 20_000


def test_ten_thousand_bare_scalar_nodes_come_back_as_0_d_arrays(tmp_path):
    nodes = [(0, i, np.asarray(i * 0.1)) for i in range(10_000)]
    path = str(tmp_path / "c.h5")
    save(path, _checkpoint(nodes))
    back = read(path).nodes
    assert len(back) == 10_000 and all(_same_bits(a[2], b[2]) for a, b in zip(nodes, back))


def test_the_file_holds_the_same_hdf5_objects_at_8_and_at_10_000_nodes(tmp_path):
    def objects(n):
        rng = np.random.default_rng(n)
        path = str(tmp_path / f"c{n}.h5")
        save(path, _checkpoint([_stats_node(0, i, rng) for i in range(n)]))
        with h5py.File(path) as f:
            names = []
            f.visit(names.append)
        return names
    assert objects(8) == objects(10_000)


def test_nodes_whose_fields_differ_round_trip_through_the_slow_path(tmp_path):
    nodes = [(0, 0, {"a": np.arange(3.0), "b": np.asarray(1)}), (0, 1, {"a": np.arange(5.0)}),
             (0, 2, {"b": np.asarray(7), "c": np.zeros((0, 2))}), (0, 3, np.arange(2, dtype=np.int8))]
    path = str(tmp_path / "c.h5")
    save(path, _checkpoint(nodes))
    back = read(path).nodes
    for (_, _, want), (_, _, got) in zip(nodes, back):
        if isinstance(want, dict):
            assert sorted(want) == sorted(got) and all(_same_bits(want[k], got[k]) for k in want)
        else:
            assert _same_bits(want, got)


def test_a_field_whose_dtype_differs_between_nodes_is_refused_not_promoted(tmp_path):
    nodes = [(0, 0, {"s": np.arange(2.0)}), (0, 1, {"s": np.arange(2)})]
    with pytest.raises(ValueError, match=r"^checkpoint nodes differ in field 's': dtypes \['<f8', '<i8'\], "
                                         r"ndims \[1\]$"):
        save(str(tmp_path / "c.h5"), _checkpoint(nodes))
    assert not list(tmp_path.iterdir())


def _python_calls(tmp_path, nodes):
    """Python function calls (by file and name) in hpcdist, numpy and h5py while rank 0's writer saves
    ``nodes`` and they are read back (the standard library's are left out: h5py logs its lazily made
    type converters, once in a while)."""
    n = len(nodes)
    writer = CheckpointWriter(str(tmp_path / f"c{n}.h5"), {**FP, "shards": n}, ranks=n)
    progress = RankProgress(shards=[1] * n, busy_s=[0.5] * n)
    writer.snapshot(nodes, 0, progress, None)     # imports and first-time work out of the count
    calls = Counter()

    def count(frame, event, arg):
        where = frame.f_code.co_filename
        if event == "call" and (where.startswith(PACKAGES) or not where.startswith((STDLIB, "<frozen"))):
            calls[where, frame.f_code.co_name] += 1
    gc.disable()                                  # no finalizer runs at a moment that depends on allocations
    sys.setprofile(count)
    try:
        assert writer.snapshot(nodes, 0, progress, None)
        back = read(writer.path).nodes
    finally:
        sys.setprofile(None)
        gc.enable()
    assert len(back) == n
    return calls


@pytest.mark.parametrize("kind", ["1-value", "stats"])
def test_a_write_and_a_read_make_the_same_python_calls_at_8_and_at_10_000_nodes(tmp_path, kind):
    """No Python step per node: what grows with the nodes is numpy's work on their bytes."""
    rng = np.random.default_rng(0)
    make = (lambda i: (0, i, np.asarray(rng.random()))) if kind == "1-value" else (lambda i: _stats_node(0, i, rng))
    few, many = (_python_calls(tmp_path, [make(i) for i in range(n)]) for n in (8, 10_000))
    assert few == many and sum(few.values()) > 100
