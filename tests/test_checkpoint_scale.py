"""Checkpoints at 10,000 ranks: every saved tree node in one table, written and read back bit for bit."""

import h5py
import numpy as np
import pytest

from hpcdist.checkpoint import Checkpoint, load, save
from hpcdist.checkpoint.store import CorruptCheckpoint, read

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
