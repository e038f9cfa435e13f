"""The dynamic schedule's rules (hpcdist/schedule/claiming.py), with no MPI: words, claim sizes,
steal shares, races and the choice of a victim. docs/schedule.md explains why they are so."""

import subprocess
import sys

import pytest

from hpcdist import schedule as sch
from hpcdist.shards import static_blocks

from conftest import ROOT


def test_words_pack_a_range_and_blocks_match_the_static_schedule():
    for front, back in [(0, 0), (3, 17), (2**31 - 2, 2**31 - 1)]:
        assert sch.unpack(sch.pack(front, back)) == (front, back)
        assert sch.pack(front, back) < 2**63
    for n in (0, 1, 7, 100):
        for ranks in (1, 2, 3, 7):
            for r in range(ranks):
                assert list(range(*sch.initial_block(n, r, ranks))) == list(static_blocks(range(n), r, ranks))


def test_blocks_hold_about_claim_s_of_work_and_leave_half_stealable():
    assert sch.block_size(100, None) == 1                       # first claim: one shard, to measure
    assert sch.block_size(1000, 0.001) == 20                    # 20 ms of 1 ms shards: one atomic each
    assert sch.block_size(1000, 1e-6) == 500                    # tiny shards: capped at half of what is left
    assert sch.block_size(10, 0.5) == 1 and sch.block_size(1, 1e-9) == 1 and sch.block_size(0, 1.0) == 0


def test_steals_take_the_speed_proportional_share_and_only_when_it_pays():
    assert sch.steal_split(10, 0.01, 0.01)[0] == 5              # equals: half
    take, gain = sch.steal_split(15, 0.04, 0.01)                # victim 4x slower: 4/5
    assert take == 12 and gain == pytest.approx(15 * 0.04 - 3 * 0.04)
    assert sch.steal_split(10, 0.01, 0.04)[0] == 2              # a slow thief takes little
    assert sch.steal_split(1, 0.01, 0.01) == (0, 0.0)           # the last shard of an equal: no gain
    assert sch.steal_split(1, 0.04, 0.01)[0] == 1               # ...of a 4x slower rank: take it
    assert sch.steal_split(0, 0.01, 0.01) == (0, 0.0)
    assert sch.steal_split(8, None, 0.01)[0] == 4               # unknown speed: assumed equal
    assert sch.steal_split(8, None, None) == (4, float("inf"))


def test_a_claim_that_loses_a_race_to_a_thief_retries_with_what_is_left():
    words = sch.LocalWords(100, 2)
    owner = sch.Claimer(words, 0, 2, 100)
    assert owner.next_block() == range(0, 1)
    thief = sch.Claimer(words, 1, 2, 100, min_gain_s=0.0)
    words.cas(1, words.read(1)[0], sch.pack(100, 100))          # the thief's own block is done
    assert thief.next_block(0.001) == range(25, 37)             # it stole [25, 50) and claims its front
    assert owner.next_block(0.001) == range(1, 13)              # stale cache: CAS failed, retried on [1, 25)
    assert owner.races == 1 and sch.unpack(words.read(0)[0]) == (13, 25)
    assert thief.steals == 1


def dry_rank_among(speeds_s, n=400):
    """Rank 0 with its own block done, the others untouched and running at ``speeds_s`` (s/shard)."""
    ranks = len(speeds_s)
    words = sch.LocalWords(n, ranks)
    words.cas(0, words.read(0)[0], sch.pack(n // ranks, n // ranks))
    for r, s in enumerate(speeds_s):
        if r and s:
            words.set_speed(r, int(s * 1e9))
    return words, sch.Claimer(words, 0, ranks, n, min_gain_s=0.0)


def test_a_dry_rank_robs_the_rank_whose_tail_saves_the_most_and_keeps_it_stealable():
    words, thief = dry_rank_among([0.001, 0.001, 0.004, 0.001])   # rank 2 is 4x slower
    assert thief.best_victim(thief.victims(), 0.001)[0] == 2
    assert thief.next_block(0.001) == range(220, 240)           # took 4/5 of [200, 300), claims 20 ms of it
    assert sch.unpack(words.read(2)[0]) == (200, 220)           # the victim keeps the rows it is reading
    assert sch.unpack(words.read(0)[0]) == (240, 300)           # the rest is in the thief's word, stealable


def test_between_equals_the_nearest_rank_in_the_ring_is_robbed():
    _, thief = dry_rank_among([0.001] * 4)
    assert thief.victims() == [1, 2, 3]
    assert thief.best_victim(thief.victims(), 0.001)[0] == 1


def test_no_victim_when_no_steal_saves_the_minimum_gain():
    words, _ = dry_rank_among([1e-5] * 3)
    before = [words.read(r) for r in range(3)]
    thief = sch.Claimer(words, 0, 3, 400)                       # default: a steal must save 50 ms
    assert thief.next_block(1e-5) is None                       # 133 shards of 10 us: 0.7 ms to save
    assert [words.read(r)[0] for r in range(3)] == [w for w, _ in before]


def test_past_survey_all_a_dry_rank_reads_its_neighbours_and_a_sample():
    words = sch.LocalWords(4000, 40)
    for rank in (0, 17, 39):
        claimer = sch.Claimer(words, rank, 40, 4000)
        assert not claimer.exhaustive
        victims = claimer.victims()
        assert (rank + 1) % 40 == victims[0] and (rank - 1) % 40 == victims[-1]
        assert rank not in victims and len(set(victims)) == len(victims) <= sch.SAMPLE + 2
    assert sch.Claimer(sch.LocalWords(10, 17), 0, 17, 10).exhaustive       # 16 others: read them all


def test_claiming_and_simulated_ranks_need_no_mpi():
    code = ("import sys; from hpcdist import schedule as s; "
            "d = s.Dynamic(range(50), 0, 1); assert list(d) == list(range(50)); d.close(); "
            "assert 'mpi4py' not in sys.modules, 'mpi4py imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
