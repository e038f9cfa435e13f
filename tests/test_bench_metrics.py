"""The harness's arithmetic on synthetic timing tables: speedup, efficiency, Karp-Flatt, weak
scaling, imbalance, and oversubscribed points flagged and left out."""

import pytest

from hpcdist.bench.metrics import (imbalance, karp_flatt, oversubscribed, scaling_table, summary,
                                   weak_efficiency)

pytestmark = pytest.mark.timeout(30)


def pts(*rows):
    return [{"ranks": p, "time_s": t, "oversubscribed": o} for p, t, o in rows]


def test_strong_scaling_speedup_efficiency_and_karp_flatt():
    table = scaling_table("strong", pts((1, 100.0, False), (2, 52.0, False), (4, 28.0, False), (8, 16.0, False)))
    by = {p["ranks"]: p for p in table}
    assert by[1]["speedup"] == 1.0 and by[1]["efficiency"] == 1.0 and by[1]["karp_flatt"] is None
    assert by[2]["speedup"] == pytest.approx(100 / 52)
    assert by[4]["efficiency"] == pytest.approx(100 / (4 * 28))
    assert by[8]["efficiency"] == pytest.approx(0.78125)
    # Karp-Flatt: e = (1/S - 1/p) / (1 - 1/p); a program with serial fraction f gives back f
    s8 = 100 / 16
    assert by[8]["karp_flatt"] == pytest.approx((1 / s8 - 1 / 8) / (1 - 1 / 8))
    f = 0.05
    amdahl = [(p, 100 * (f + (1 - f) / p), False) for p in (1, 2, 4, 16, 64)]
    for p in scaling_table("strong", pts(*amdahl))[1:]:
        assert p["karp_flatt"] == pytest.approx(f)


def test_points_are_sorted_and_a_missing_one_rank_point_uses_the_smallest_as_baseline():
    table = scaling_table("strong", pts((8, 10.0, False), (2, 35.0, False), (4, 18.0, False)))
    assert [p["ranks"] for p in table] == [2, 4, 8]
    by = {p["ranks"]: p for p in table}
    assert by[2]["speedup"] == pytest.approx(2.0)               # 2 * T2 / T2: relative to 2 ranks
    assert by[8]["speedup"] == pytest.approx(2 * 35 / 10)
    assert by[8]["efficiency"] == pytest.approx(70 / 10 / 8)
    assert by[8]["karp_flatt"] is None                          # only defined against 1 rank


def test_oversubscribed_points_are_flagged_and_excluded_from_every_figure():
    assert oversubscribed(ranks_per_node=4, cores_per_node=2) and not oversubscribed(2, 2)
    table = scaling_table("strong", pts((1, 10.0, False), (2, 5.2, False), (4, 4.0, True)))
    over = table[-1]
    assert over["excluded"] == "oversubscribed"
    assert over["speedup"] is None and over["efficiency"] is None and over["karp_flatt"] is None
    assert table[1]["efficiency"] == pytest.approx(10 / 10.4)
    # an oversubscribed smallest point is not the baseline either
    table = scaling_table("strong", pts((1, 10.0, True), (2, 6.0, False), (4, 3.5, False)))
    assert table[0]["speedup"] is None and table[1]["speedup"] == 2.0    # 2 T2 / T2
    assert table[2]["speedup"] == pytest.approx(2 * 6.0 / 3.5)
    weak = scaling_table("weak", pts((1, 10.0, False), (2, 10.5, False), (4, 13.0, True)))
    assert weak[1]["weak_efficiency"] == pytest.approx(10 / 10.5) and weak[2]["weak_efficiency"] is None


def test_weak_scaling_is_t1_over_tp_and_needs_the_one_rank_point():
    assert weak_efficiency(10.0, 12.5) == pytest.approx(0.8)
    table = scaling_table("weak", pts((1, 10.0, False), (2, 10.0, False), (4, 12.5, False)))
    assert [p["weak_efficiency"] for p in table] == pytest.approx([1.0, 1.0, 0.8])
    assert all(p["speedup"] is None for p in table)
    table = scaling_table("weak", pts((2, 10.0, False), (4, 12.5, False)))
    assert all(p["weak_efficiency"] is None and p["excluded"] == "no 1-rank point" for p in table)


def test_summary_and_imbalance():
    s = summary([3.0, 1.0, 2.0, 10.0, 4.0])
    assert (s["min"], s["median"], s["max"], s["n"]) == (1.0, 3.0, 10.0, 5)
    assert imbalance([1.0, 1.0]) == 1.0 and imbalance([3.0, 1.0]) == pytest.approx(1.5)
    assert imbalance([]) is None and imbalance([0.0, 0.0]) is None
    assert karp_flatt(1.0, 1) is None
    with pytest.raises(ValueError):
        summary([])
    with pytest.raises(ValueError):
        scaling_table("sideways", [])
