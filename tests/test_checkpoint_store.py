"""Checkpoint files: atomic generations, checksums, fallback to the previous generation, no code."""

import h5py
import numpy as np
import pytest

from hpcdist import UserError
from hpcdist.checkpoint import Checkpoint, differences, load, save
from hpcdist.tree import outermost
from hpcdist.checkpoint.store import CorruptCheckpoint, previous_path, read

FP = {"job": "j", "params": {"bins": 4}, "input": {"input": "x.h5:/x", "mtime_ns": 1}, "shards": 16,
      "shard_rows": 10, "job_sha256": "ab", "hpcdist_version": "0"}


def make(gen, nodes=None, state=None):
    nodes = nodes if nodes is not None else [(2, 0, {"s": np.arange(3.0) * gen, "n": np.asarray(4)}),
                                             (0, 5, np.array([gen, 1.5]))]
    return Checkpoint(fingerprint=FP, pass_index=1, nodes=nodes, state=state, generation=gen, ranks=3,
                      rank_shards=[2, 3, 0], rank_busy_s=[0.1, 0.2, 0.0],
                      allocation={"slurm_job_id": 42, "slurm_restart_count": 1})


def test_round_trip_keeps_every_bit(tmp_path):
    path = str(tmp_path / "c.h5")
    save(path, make(1, state={"centroids": np.eye(2) / 3}))
    got, warnings = load(path)
    assert warnings == [] and got.generation == 1 and got.pass_index == 1
    assert got.shards_done() == 5 and got.fingerprint == FP
    (l0, i0, p0), (l1, i1, p1) = got.nodes
    assert (l0, i0, l1, i1) == (2, 0, 0, 5)
    assert p0["s"].tobytes() == np.arange(3.0).tobytes() and p0["n"].shape == ()
    assert p1.tobytes() == np.array([1, 1.5]).tobytes()
    assert got.state["centroids"].tobytes() == (np.eye(2) / 3).tobytes()
    assert got.allocation == {"slurm_job_id": 42, "slurm_restart_count": 1}


def test_the_file_is_plain_hdf5_with_a_sha256_trailer_and_no_code(tmp_path):
    path = tmp_path / "c.h5"
    save(str(path), make(1, state={"centroids": np.eye(2)}))
    with h5py.File(path) as f:
        assert f.attrs["format"] == "hpcdist-checkpoint"
        assert list(f["nodes/level"]) == [2, 0] and list(f["nodes/index"]) == [0, 5]
        ds = f["nodes/fields/s/data"]
        assert ds.dtype == np.float64 and f["nodes/fields/s/shape"].shape == (1, 1)
        assert f["state/centroids"].fletcher32     # small arrays keep HDF5's own checksum too
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and raw[-80:-65] == b"HPCDIST-SHA256:"
    assert b"pickle" not in raw and b"cnumpy" not in raw


def test_previous_generation_is_kept_until_the_next_is_complete(tmp_path):
    path = str(tmp_path / "c.h5")
    save(path, make(1))
    save(path, make(2))
    assert read(path).generation == 2 and read(previous_path(path)).generation == 1
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("damage", ["truncate", "flip", "zero"])
def test_a_damaged_newest_generation_falls_back_with_a_warning(tmp_path, damage):
    path = str(tmp_path / "c.h5")
    save(path, make(1))
    save(path, make(2))
    _damage(path, damage)
    got, warnings = load(path)
    assert got.generation == 1
    assert len(warnings) == 1 and "corrupt" in warnings[0] and "generation 1" in warnings[0]


def test_no_valid_generation_is_a_clear_error(tmp_path):
    path = str(tmp_path / "c.h5")
    save(path, make(1))
    save(path, make(2))
    _damage(path, "truncate")
    _damage(previous_path(path), "flip")
    with pytest.raises(UserError, match="no valid checkpoint: .*--restart=fresh"):
        load(path)


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        f["x"] = 1
    with pytest.raises(CorruptCheckpoint, match="not an hpcdist checkpoint"):
        read(str(path))


def test_no_checkpoint_is_not_an_error(tmp_path):
    assert load(str(tmp_path / "none.h5")) == (None, [])


def test_a_failed_write_leaves_the_previous_generation(tmp_path, monkeypatch):
    path = str(tmp_path / "c.h5")
    save(path, make(1))

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("hpcdist.atomic.fsync_path", full_disk)
    with pytest.raises(OSError):
        save(path, make(2))
    assert read(path).generation == 1
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_fingerprint_differences_name_what_changed():
    other = {**FP, "params": {"bins": 8}, "input": {**FP["input"], "mtime_ns": 2}}
    diffs = differences(FP, other)
    assert "input changed: mtime_ns 1 -> 2" in diffs and "params changed: bins 4 -> 8" in diffs


def test_union_of_snapshots_keeps_each_shard_once():
    # rank 1's snapshot still lists (1, 1) and (0, 4) after its parent merged them into (2, 0)
    nodes = [(2, 0, "parent"), (1, 1, "child"), (0, 4, "a"), (0, 4, "a"), (1, 3, "b"), (0, 2, "inner")]
    assert [(lv, ix) for lv, ix, _ in outermost(nodes)] == [(2, 0), (0, 4), (1, 3)]


def _damage(path, how):
    data = bytearray(open(path, "rb").read())
    if how == "truncate":
        data = data[: len(data) // 2]
    elif how == "flip":
        for i in range(len(data) - 200, len(data) - 100):
            data[i] ^= 0xFF
    else:
        data[2048:4096] = bytes(2048)
    open(path, "wb").write(bytes(data))
