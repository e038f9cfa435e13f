"""Fault injection: kills, signals, damaged and foreign checkpoints, a full disk, a multi-pass kill.

Every recovery must give the bits of a run that never failed, at another rank count too, and the
resumed run must compute only the shards the checkpoint did not hold.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from hpcdist.checkpoint.store import previous_path, read

from conftest import JOBS, ROOT, assert_same_bits, hpcdist, launch_env, mpiexec, read_h5, run_ok
from faults import slow_write_env

SLOW = str(ROOT / "tests" / "jobs" / "slow_sum.py")
SHARDS = 120
SLEEP = 0.03                                  # seconds per shard
SLOW_ARGS = ["--shard-rows", "500", "--param", f"shards={SHARDS}", "--param", f"sleep={SLEEP}"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    run_ok("run", SLOW, *SLOW_ARGS, "--param", "sleep=0", "--output", str(out))
    res = read_h5(out)
    assert np.array_equal(res["seen"], np.ones(SHARDS))
    return res


class Launch:
    """An ``mpiexec -n N hpcdist run ...`` in the background, whose ranks we can signal or kill."""

    def __init__(self, ranks, *args, env=None):
        self.marker = uuid.uuid4().hex
        e = {**launch_env(), "HPCDIST_TEST_MARKER": self.marker, **(env or {})}
        cmd = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "hpcdist", "run", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
        self.ranks = ranks

    def pids(self):
        found = {}
        deadline = time.monotonic() + 20
        while len(found) < self.ranks and time.monotonic() < deadline:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
                    cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
                except OSError:
                    continue
                if f"HPCDIST_TEST_MARKER={self.marker}".encode() in env and b"hpcdist" in cmdline \
                        and b"mpiexec" not in cmdline and b"proxy" not in cmdline:
                    for item in env:
                        if item.startswith(b"PMI_RANK="):
                            found[int(item.split(b"=")[1])] = int(pid)
            time.sleep(0.05)
        assert len(found) == self.ranks, f"found ranks {found}"
        return found

    def ready(self):
        """Every rank's process has its stop handlers installed (SIGUSR1 and SIGTERM are caught)."""
        def caught(pid):
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("SigCgt:"):
                    mask = int(line.split()[1], 16)
                    return all(mask >> (s - 1) & 1 for s in (signal.SIGUSR1, signal.SIGTERM))
            return False
        pids = self.pids()
        wait_for(lambda: all(caught(pid) for pid in pids.values()))
        return pids

    def signal(self, rank, sig):
        os.kill(self.pids()[rank], sig)

    def finish(self, timeout=60):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


def wait_for(predicate, timeout=30, every=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError("timed out waiting")


def writing(ckpt):
    """True while rank 0 is writing the next generation of ``ckpt`` (its temporary file exists)."""
    return any(p.name.startswith(f".{ckpt.name}.tmp-") for p in ckpt.parent.iterdir())


def valid_checkpoint(path):
    try:
        return read(str(path))
    except Exception:
        return None


class read_nothing:
    """No checkpoint yet."""

    @staticmethod
    def shards_done():
        return 0


def resume_and_check(ckpt, out, ranks, reference, shards_done):
    proc = run_ok("run", SLOW, *SLOW_ARGS, "--checkpoint", str(ckpt), "--output", str(out), ranks=ranks)
    assert "resuming from" in proc.stderr
    res = read_h5(out)
    assert_same_bits(reference, res)
    import h5py
    with h5py.File(out) as f:
        assert f.attrs["shards_resumed"] == shards_done
        assert f.attrs["shards_computed"] == SHARDS - shards_done    # only what the checkpoint lacked
    assert not ckpt.exists() and not Path(previous_path(str(ckpt))).exists()


@pytest.mark.parametrize("moment", range(6))
def test_kill_9_a_rank_then_resume_on_2_and_3_ranks_gives_the_same_bits(moment, tmp_path, reference):
    rng = random.Random(1000 + moment)
    during_write = moment == 5
    ckpt = tmp_path / "run.ckpt.h5"
    env = slow_write_env(0.4, ckpt) if during_write else None
    ranks = 4 if moment in (2, 3) else 3       # at 4 ranks, rank 3's snapshots pass through rank 2
    run = Launch(ranks, SLOW, *SLOW_ARGS, "--checkpoint", str(ckpt), "--checkpoint-every", "0.1",
                 "--output", str(tmp_path / "never.h5"), env=env)
    pids = run.pids()
    wait_for(lambda: valid_checkpoint(ckpt) is not None)
    if during_write:
        victim = 0
        wait_for(lambda: writing(ckpt))
    else:
        victim = rng.randrange(ranks)
        # a moment inside the map phase: it sleeps SHARDS * sleep / ranks (0.9 s at 4 ranks), and a
        # kill after the output is written would test nothing but a finished run
        time.sleep(rng.uniform(0.0, 0.4 * SHARDS * SLEEP / ranks))
    os.kill(pids[victim], signal.SIGKILL)
    code, err = run.finish()
    assert code != 0
    assert not (tmp_path / "never.h5").exists()
    saved = read(str(ckpt)) if ckpt.exists() else read(previous_path(str(ckpt)))
    done = saved.shards_done()
    assert 0 <= done < SHARDS
    twin = tmp_path / "twin.ckpt.h5"
    for src, dst in ((ckpt, twin), (Path(previous_path(str(ckpt))), Path(previous_path(str(twin))))):
        if src.exists():
            shutil.copy(src, dst)
    resume_and_check(ckpt, tmp_path / "out2.h5", 2, reference, done)
    resume_and_check(twin, tmp_path / "out3.h5", 3, reference, done)


@pytest.mark.parametrize("sig,ranks,victim,every", [
    (signal.SIGTERM, 1, 0, "0.2"), (signal.SIGTERM, 2, 1, "30"), (signal.SIGUSR1, 3, 2, "30"),
    (signal.SIGTERM, 3, 2, "0.2"),      # during checkpoint rounds
    (signal.SIGTERM, 4, 3, "0.2"), (signal.SIGUSR1, 6, 5, "0.2"),   # the stop relayed through the tree
])
def test_a_signal_to_any_rank_checkpoints_all_ranks_and_exits_75(sig, ranks, victim, every, tmp_path, reference):
    ckpt = tmp_path / "run.ckpt.h5"
    run = Launch(ranks, SLOW, *SLOW_ARGS, "--checkpoint", str(ckpt), "--checkpoint-every", every,
                 "--output", str(tmp_path / "o.h5"))
    pids = run.ready()
    if every == "30":
        time.sleep(0.5)
    else:                                           # mapping has begun: a checkpoint holds shards
        wait_for(lambda: (valid_checkpoint(ckpt) or read_nothing).shards_done() > 0)
    sent = time.monotonic()
    os.kill(pids[victim], sig)
    code, err = run.finish()
    assert code == 75, err
    assert time.monotonic() - sent < 5.0            # every rank stopped and the checkpoint is on disk
    assert f"{signal.Signals(sig).name}" in err and "checkpoint written" in err
    saved = read(str(ckpt))
    assert 0 < saved.shards_done() < SHARDS and saved.ranks == ranks
    resume_and_check(ckpt, tmp_path / "o.h5", ranks % 3 + 1, reference, saved.shards_done())


def test_a_second_signal_during_the_checkpoint_write_does_not_corrupt_it(tmp_path, reference):
    ckpt = tmp_path / "run.ckpt.h5"
    run = Launch(3, SLOW, *SLOW_ARGS, "--checkpoint", str(ckpt), "--checkpoint-every", "30",
                 "--output", str(tmp_path / "o.h5"), env=slow_write_env(0.5, ckpt))
    pids = run.ready()
    time.sleep(0.3)
    os.kill(pids[1], signal.SIGUSR1)
    wait_for(lambda: writing(ckpt))
    os.kill(pids[0], signal.SIGTERM)
    os.kill(pids[2], signal.SIGINT)
    code, err = run.finish()
    assert code == 75, err
    saved = read(str(ckpt))
    resume_and_check(ckpt, tmp_path / "o.h5", 3, reference, saved.shards_done())


@pytest.fixture
def interrupted(tmp_path):
    """A checkpoint left by a run stopped with SIGTERM, and the input it was made from."""
    data = tmp_path / "in.npy"
    np.save(data, np.random.default_rng(0).normal(size=(60_000, 2)))
    ckpt = tmp_path / "run.ckpt.h5"
    args = [SLOW, "--input", str(data), *SLOW_ARGS, "--checkpoint", str(ckpt), "--checkpoint-every", "0.2"]
    run = Launch(2, *args)
    run.pids()
    wait_for(lambda: getattr(valid_checkpoint(ckpt), "generation", 0) >= 2)   # one read: it is replaced meanwhile
    run.signal(1, signal.SIGTERM)
    assert run.finish()[0] == 75
    return args, ckpt, data


@pytest.mark.parametrize("change,message", [
    (["--param", "sleep=0.001"], "params changed: sleep 0.03 -> 0.001"),
    (["--shard-rows", "400"], "shard layout changed"),
    ("touch", "input changed: mtime_ns"),
    ("job", "job source changed"),
])
def test_a_checkpoint_from_another_run_is_refused_naming_the_difference(change, message, interrupted, tmp_path):
    args, ckpt, data = interrupted
    if change == "touch":
        os.utime(data, ns=(time.time_ns(), time.time_ns() + 10**9))
        change = []
    elif change == "job":
        other = tmp_path / "slow_sum.py"
        other.write_text(Path(SLOW).read_text() + "\n# edited\n")
        args = [str(other), *args[1:]]
        change = []
    proc = hpcdist("run", *args, *change, ranks=2)
    assert proc.returncode == 2
    assert message in proc.stderr and "--restart=fresh" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_damaged_newest_generation_falls_back_to_the_previous_one(interrupted, tmp_path, reference):
    args, ckpt, data = interrupted
    older = read(previous_path(str(ckpt)))
    raw = bytearray(ckpt.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    ckpt.write_bytes(bytes(raw))
    proc = run_ok("run", *args, "--output", str(tmp_path / "o.h5"), ranks=3)
    assert "is corrupt, using generation" in proc.stderr
    with __import__("h5py").File(tmp_path / "o.h5") as f:
        assert f.attrs["shards_resumed"] == older.shards_done()
        assert np.array_equal(f["seen"][()], np.ones(SHARDS))


def test_restart_modes(interrupted, tmp_path):
    args, ckpt, data = interrupted
    proc = run_ok("run", *args, "--restart", "fresh", ranks=2)
    assert "resuming" not in proc.stderr
    proc = hpcdist("run", *args, "--restart", "require")
    assert proc.returncode == 2 and "there is no checkpoint at" in proc.stderr


def test_keep_checkpoint_marks_it_complete_and_a_rerun_computes_nothing(tmp_path, reference):
    ckpt, out = tmp_path / "c.h5", tmp_path / "o.h5"
    args = [SLOW, *SLOW_ARGS, "--param", "sleep=0", "--checkpoint", str(ckpt), "--keep-checkpoint"]
    run_ok("run", *args, "--output", str(out), ranks=2)
    assert read(str(ckpt)).complete
    again = tmp_path / "again.h5"
    proc = run_ok("run", *args, "--output", str(again), ranks=3)
    assert "complete" in proc.stderr
    assert_same_bits(reference, read_h5(again))
    with __import__("h5py").File(again) as f:
        assert f.attrs["shards_computed"] == 0


def test_inspect_describes_progress_and_validity(interrupted):
    args, ckpt, data = interrupted
    proc = run_ok("inspect", str(ckpt))
    assert "valid, generation" in proc.stdout and "shards done" in proc.stdout and "job slow_sum" in proc.stdout
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    proc = hpcdist("inspect", str(ckpt))
    assert "INVALID" in proc.stdout and proc.returncode == 0       # .prev is still valid
    Path(previous_path(str(ckpt))).unlink()
    assert hpcdist("inspect", str(ckpt)).returncode == 1


def test_a_full_disk_at_checkpoint_time_is_reported_and_the_last_generation_survives(tmp_path, reference, tiny_tmpfs):
    mnt = tiny_tmpfs("512k")
    ckpt = mnt / "run.ckpt.h5"
    run = Launch(2, SLOW, *SLOW_ARGS, "--checkpoint", str(ckpt), "--checkpoint-every", "0.1",
                 "--output", str(tmp_path / "o.h5"))
    run.pids()
    wait_for(lambda: valid_checkpoint(ckpt) is not None)
    subprocess.run(["dd", "if=/dev/zero", f"of={mnt}/filler", "bs=4k"], capture_output=True)
    before = read(str(ckpt)).generation
    time.sleep(0.5)                                         # periodic writes now fail...
    run.signal(1, signal.SIGTERM)                           # ...and so does the final one
    code, err = run.finish()
    assert code == 1 and "checkpoint not written" in err and "checkpoint NOT written" in err
    assert read(str(ckpt)).generation == before             # the last good one is intact
    (mnt / "filler").unlink()
    saved = read(str(ckpt))
    resume_and_check(ckpt, tmp_path / "o.h5", 2, reference, saved.shards_done())


def test_kmeans_killed_in_its_third_pass_resumes_in_that_pass(tmp_path):
    args = [str(JOBS / "kmeans.py"), "--input", "synthetic:rows=3000000,cols=3,seed=2",
            "--param", "k=8", "--param", "iters=6", "--param", "tol=0", "--shard-rows", "20000"]
    ref = tmp_path / "ref.h5"
    run_ok("run", *args, "--output", str(ref), ranks=2)
    ckpt = tmp_path / "k.ckpt.h5"
    run = Launch(3, *args, "--checkpoint", str(ckpt), "--checkpoint-every", "0.05")
    pids = run.pids()
    wait_for(lambda: (c := valid_checkpoint(ckpt)) is not None and c.pass_index == 2, timeout=60, every=0.005)
    os.kill(pids[1], signal.SIGKILL)
    run.finish()
    saved = read(str(ckpt)) if ckpt.exists() else read(previous_path(str(ckpt)))
    assert saved.pass_index == 2 and saved.state is not None
    out = tmp_path / "out.h5"
    proc = run_ok("run", *args, "--checkpoint", str(ckpt), "--output", str(out), ranks=2)
    assert "in pass 3" in proc.stderr
    assert_same_bits(read_h5(ref), read_h5(out))
