"""Keyed jobs under --checkpoint: kill -9 mid-run, resume on another rank count, the same bits once."""

import os
import signal
import time

import h5py
import numpy as np
import pytest

from conftest import JOBS, ROOT, MPIRun, assert_same_bits, hpcdist, read_h5, run_ok, wait_for_stop_handlers
from hpcdist.checkpoint.store import previous_path, read

SLOW = str(ROOT / "tests" / "jobs" / "slow_groupby.py")
SHARDS, SHARD_ROWS = 40, 500


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    rng = np.random.default_rng(5)
    data = rng.normal(size=(SHARDS * SHARD_ROWS, 3))
    data[:, 0] = rng.integers(0, 300, len(data))
    data[rng.random(data.shape) < 0.05] = np.nan
    data[:, 0] = np.nan_to_num(data[:, 0])
    path = tmp_path_factory.mktemp("keyed_ckpt") / "e.h5"
    with h5py.File(path, "w") as f:
        f["e"] = data
    ref = path.parent / "ref.h5"
    run_ok("run", str(JOBS / "groupby.py"), "--input", f"{path}:/e", "--shard-rows", str(SHARD_ROWS),
           "--output", str(ref))
    return path, read_h5(ref)


def saved_shards(ckpt):
    for p in (ckpt, previous_path(str(ckpt))):
        try:
            return read(str(p)).shards_done()
        except Exception:
            continue
    return 0


def test_kill_9_during_the_map_then_resume_on_3_ranks_gives_the_same_bits_once(events, tmp_path):
    path, reference = events
    args = ["run", SLOW, "--input", f"{path}:/e", "--shard-rows", str(SHARD_ROWS), "--param", "sleep=0.1",
            "--checkpoint", str(tmp_path / "c.h5"), "--checkpoint-every-shards", "1"]
    run = MPIRun(2, *args, "--output", str(tmp_path / "never.h5"))
    pids = run.pids()
    deadline = time.monotonic() + 60
    while saved_shards(tmp_path / "c.h5") < 6:
        assert time.monotonic() < deadline, "no checkpoint with 6 shards appeared"
        time.sleep(0.05)
    os.kill(pids[1], signal.SIGKILL)
    assert run.finish().returncode != 0
    assert not (tmp_path / "never.h5").exists()
    done = saved_shards(tmp_path / "c.h5")
    assert 6 <= done < SHARDS
    out = tmp_path / "o.h5"
    proc = run_ok(*args, "--output", str(out), ranks=3)
    assert "resuming from" in proc.stderr
    assert_same_bits(reference, read_h5(out))
    with h5py.File(out) as f:
        assert f.attrs["shards_resumed"] == done and f.attrs["shards_computed"] == SHARDS - done
    assert not (tmp_path / "c.h5").exists()


def test_keep_checkpoint_is_refused_for_keyed_jobs(events, tmp_path):
    path, _ = events
    proc = hpcdist("run", str(JOBS / "groupby.py"), "--input", f"{path}:/e", "--checkpoint", str(tmp_path / "c.h5"),
                   "--keep-checkpoint", ranks=2)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("hpcdist: error: groupby: --keep-checkpoint is not supported for keyed jobs "
                                   "(map_keyed): their results live on every rank, not in the checkpoint")


def test_a_signal_checkpoints_every_rank_exits_75_and_the_rerun_finishes_with_the_same_bits(events, tmp_path):
    path, reference = events
    args = ["run", SLOW, "--input", f"{path}:/e", "--shard-rows", str(SHARD_ROWS), "--param", "sleep=0.1",
            "--checkpoint", str(tmp_path / "c.h5"), "--schedule", "dynamic"]
    run = MPIRun(3, *args, "--output", str(tmp_path / "never.h5"))
    pids = run.pids()
    wait_for_stop_handlers(pids)
    time.sleep(1.0)
    os.kill(pids[2], signal.SIGTERM)
    assert run.finish().returncode == 75
    done = saved_shards(tmp_path / "c.h5")
    assert 0 < done < SHARDS and not (tmp_path / "never.h5").exists()
    out = tmp_path / "o.h5"
    run_ok(*args, "--output", str(out), ranks=2)
    assert_same_bits(reference, read_h5(out))
