"""The dynamic schedule: claims and steals (simulated ranks, then real mpiexec runs with a slow rank).

Who maps a shard must never change the bits: dynamic == static == 1 rank, and a run killed while
ranks were stealing resumes, at another rank count, to the same bits with every shard once.
"""

import os
import random
import signal
import threading
import time

import h5py
import numpy as np
import pytest

from hpcdist import schedule as sch
from hpcdist.checkpoint.store import previous_path, read
from hpcdist.errors import UserError
from hpcdist.output import read_result
from hpcdist.shards import static_blocks
from hpcdist.tree import Fold

from conftest import ROOT, assert_same_bits, hpcdist, read_h5, run_ok
from test_checkpoint_restart import Launch, valid_checkpoint, wait_for

UNEVEN = str(ROOT / "tests" / "jobs" / "uneven_sum.py")


# ---- the schedules, simulated (ranks as threads; the rules alone: test_schedule_claiming.py) -----

def test_auto_is_dynamic_on_more_than_one_rank_and_bad_names_are_refused():
    assert sch.resolve("auto", 1) == "static" and sch.resolve("auto", 2) == "dynamic"
    assert sch.resolve("static", 8) == "static" and sch.resolve("dynamic", 1) == "dynamic"
    with pytest.raises(UserError, match="--schedule must be one of"):
        sch.resolve("guided", 4)


def simulate(n, ranks, speeds, todo=None, **tuning):
    """Ranks as threads over LocalWords; returns what each claimed, in order, and the claimers."""
    todo = list(range(n)) if todo is None else todo
    words = sch.LocalWords(len(todo), ranks)
    scheds = [sch.Dynamic(todo, r, ranks, words=words, **tuning) for r in range(ranks)]
    got = [[] for _ in range(ranks)]

    def work(r):
        for s in scheds[r]:
            got[r].append(s)
            time.sleep(speeds[r])

    threads = [threading.Thread(target=work, args=(r,)) for r in range(ranks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    return got, scheds


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ranks,survey_all", [(1, 16), (2, 16), (3, 16), (5, 16), (3, 0), (40, 16)])
def test_simulated_ranks_claim_every_shard_exactly_once(ranks, survey_all):
    rng = random.Random(ranks)
    speeds = [0.002] + [rng.choice([0.0, 0.0002]) for _ in range(ranks - 1)]     # rank 0 is slow
    todo = [s for s in range(400) if s % 7 != 3]                # a resumed pass: gaps
    got, scheds = simulate(len(todo), ranks, speeds, todo, min_gain_s=0.0, claim_s=1e-4, survey_all=survey_all)
    assert all(c.claimer.exhaustive == (ranks - 1 <= survey_all) for c in scheds)   # 40: samples + NBX
    flat = sorted(s for g in got for s in g)
    assert flat == todo
    assert sum(c.claimer.steals for c in scheds) >= (1 if ranks > 1 else 0)
    for r, g in enumerate(got):                                 # own block first
        block = static_blocks(todo, r, ranks)
        if len(block):
            assert g[0] == block[0]


def test_a_simulated_slow_rank_keeps_about_its_share():
    got, scheds = simulate(200, 2, [0.0005, 0.002], min_gain_s=0.0)
    counts = [len(g) for g in got]
    assert sum(counts) == 200 and counts[1] < 70                # 4x slower: ~40 of 200, never 100


def test_no_steal_is_worth_less_than_the_minimum_gain():
    got, scheds = simulate(40, 2, [0.0, 0.0001])                # tiny shards: nothing moves
    assert [len(g) for g in got] == [20, 20] and scheds[0].steals == 0


@pytest.mark.parametrize("shards", [1, 2, 5, 16, 37, 100])
def test_add_leaf_in_any_order_builds_the_same_tree_bits(shards):
    def skewed(a, b):
        return a * 1.0000001 + b

    leaves = {s: np.array([np.sin(s + 1.0), 1.0 / (s + 3.0)]) for s in range(shards)}
    ordered = Fold(shards, skewed)
    for s in range(shards):
        ordered.push_leaf(s, leaves[s])
    for seed in range(5):
        order = list(range(shards))
        random.Random(seed).shuffle(order)
        half = order[: shards // 2]
        fold, other = Fold(shards, skewed), Fold(shards, skewed)
        for s in half:
            fold.add_leaf(s, leaves[s])
        for s in order[shards // 2:]:
            other.add_leaf(s, leaves[s])
        fold.merge(other.nodes)                                 # as the reduction does
        assert fold.root().tobytes() == ordered.root().tobytes()


# ---- real runs -----------------------------------------------------------------------------------

SHARDS = 40
ARGS = ["--shard-rows", "1500", "--param", f"shards={SHARDS}", "--param", "work=0.02"]


def attrs(path):
    return read_result(str(path))[1]       # per-rank lists come from /hpcdist/ranks


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("uneven") / "ref.h5"
    run_ok("run", UNEVEN, *ARGS, "--param", "work=0", "--output", str(out))
    res = read_h5(out)
    assert np.array_equal(res["seen"], np.ones(SHARDS))
    return res


@pytest.mark.timeout(120)
@pytest.mark.parametrize("ranks", [2, 3])
def test_one_rank_4x_slower_dynamic_gives_the_static_bits_and_the_slow_rank_does_less(ranks, reference, tmp_path):
    slow = ranks - 1
    runs = {}
    for kind in ("static", "dynamic"):
        out = tmp_path / f"{kind}.h5"
        run_ok("run", UNEVEN, *ARGS, "--param", f"slow_rank={slow}", "--schedule", kind,
               "--output", str(out), ranks=ranks)
        assert_same_bits(reference, read_h5(out))
        runs[kind] = attrs(out)
    st, dy = runs["static"], runs["dynamic"]
    assert st["schedule"] == "static" and dy["schedule"] == "dynamic"
    assert list(st["rank_shards"]) == [len(static_blocks(range(SHARDS), r, ranks)) for r in range(ranks)]
    assert sum(dy["rank_shards"]) == SHARDS and sum(dy["rank_steals"]) >= 1
    assert dy["rank_shards"][slow] < min(st["rank_shards"])     # the slow rank did fewer shards
    assert all(c >= 1 for c in dy["rank_claims"]) and len(dy["rank_idle_s"]) == ranks
    assert dy["rank_idle_s"][0] < st["rank_idle_s"][0]          # fast ranks no longer wait for it


def test_auto_is_recorded_and_a_bad_schedule_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "o.h5"
    run_ok("run", UNEVEN, *ARGS, "--param", "work=0", "--output", str(out), ranks=2)
    assert attrs(out)["schedule"] == "dynamic"
    proc = hpcdist("run", UNEVEN, "--schedule", "guided")
    assert proc.returncode == 2 and "invalid choice: 'guided'" in proc.stderr
    assert len([l for l in proc.stderr.splitlines() if "error" in l]) == 1


@pytest.mark.timeout(120)
def test_kill_9_during_a_dynamic_run_then_resume_on_2_ranks_gives_the_same_bits(tmp_path):
    shards = 120                                # blocks of 40; rank 2 is 10x slower (0.25 s a shard)
    args = [UNEVEN, "--shard-rows", "500", "--param", f"shards={shards}", "--param", "work=0.025",
            "--param", "slow_rank=2", "--param", "factor=10"]
    ref = tmp_path / "ref.h5"
    run_ok("run", *args, "--param", "slow_rank=-1", "--param", "work=0", "--output", str(ref))
    ckpt = tmp_path / "run.ckpt.h5"
    run = Launch(3, *args, "--schedule", "dynamic", "--checkpoint", str(ckpt), "--checkpoint-every", "0.1",
                 "--output", str(tmp_path / "never.h5"))
    pids = run.pids()
    # past 88 shards the fast ranks are mapping what they stole from the slow one
    wait_for(lambda: (c := valid_checkpoint(ckpt)) is not None and c.shards_done() >= 88, timeout=60)
    os.kill(pids[random.Random(6).randrange(3)], signal.SIGKILL)
    code, _ = run.finish()
    assert code != 0 and not (tmp_path / "never.h5").exists()
    saved = read(str(ckpt)) if ckpt.exists() else read(previous_path(str(ckpt)))
    done = saved.shards_done()
    assert 88 <= done < shards and max(saved.rank_shards[:2]) > shards // 3   # stolen shards were saved
    out = tmp_path / "out.h5"
    proc = run_ok("run", *args, "--schedule", "dynamic", "--checkpoint", str(ckpt), "--output", str(out),
                  ranks=2)
    assert "resuming from" in proc.stderr
    res = read_h5(out)
    assert_same_bits(read_h5(ref), res)
    assert np.array_equal(res["seen"], np.ones(shards))          # every shard folded exactly once
    a = attrs(out)
    assert a["shards_resumed"] == done and a["shards_computed"] == shards - done
