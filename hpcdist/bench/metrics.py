"""Scaling figures from a timing table: pure functions, no MPI, no files.

A *point* is one rank count of one study: ``ranks``, ``time_s`` (the run's time: the slowest rank's,
median over repeats) and ``oversubscribed``. Oversubscribed points (more ranks on a node than it
has cores) are kept in tables, marked, and left out of every speedup / efficiency figure: a
"speedup" measured while ranks share cores describes the scheduler, not the program.
"""

from __future__ import annotations

import statistics
from typing import Iterable, Mapping, Sequence


def summary(values: Sequence[float]) -> dict[str, float]:
    """min / median / max / n of the repeats (and the values themselves)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no values")
    return {"min": min(vals), "median": statistics.median(vals), "max": max(vals), "n": len(vals),
            "values": vals}


def oversubscribed(ranks_per_node: int, cores_per_node: int) -> bool:
    """More ranks on a node than cores to run them."""
    return ranks_per_node > cores_per_node


def speedup(t_base: float, t_p: float, p_base: int = 1) -> float:
    """S = T1 / Tp (relative to the smallest measured rank count ``p_base``: p_base * T_base / Tp)."""
    return p_base * t_base / t_p


def efficiency(t_base: float, t_p: float, p: int, p_base: int = 1) -> float:
    """E = T1 / (p Tp) (= S / p)."""
    return speedup(t_base, t_p, p_base) / p


def karp_flatt(s: float, p: int) -> float | None:
    """Karp-Flatt experimentally determined serial fraction e = (1/S - 1/p) / (1 - 1/p); None at p=1."""
    if p <= 1:
        return None
    return (1.0 / s - 1.0 / p) / (1.0 - 1.0 / p)


def weak_efficiency(t1: float, t_p: float) -> float:
    """Weak scaling: T1 / Tp at a fixed amount of work per rank (1.0 is perfect)."""
    return t1 / t_p


def imbalance(busy: Iterable[float]) -> float | None:
    """max / mean of the per-rank busy seconds (1.0 = perfectly even); None without work."""
    vals = [float(b) for b in busy]
    if not vals or sum(vals) <= 0:
        return None
    return max(vals) / (sum(vals) / len(vals))


def scaling_table(kind: str, points: Sequence[Mapping]) -> list[dict]:
    """Each point with its scaling figures, sorted by ranks.

    Strong: ``speedup``, ``efficiency``, ``karp_flatt`` against the smallest rank count that is not
    oversubscribed (normally 1; Karp-Flatt only against 1). Weak: ``weak_efficiency`` = T1 / Tp.
    Oversubscribed points, and every point when the baseline is missing, get None and
    ``excluded`` naming the reason.
    """
    if kind not in ("strong", "weak"):
        raise ValueError(f"kind must be strong or weak, got {kind!r}")
    rows = sorted((dict(p) for p in points), key=lambda p: p["ranks"])
    fair = [p for p in rows if not p.get("oversubscribed")]
    base = fair[0] if fair else None
    for p in rows:
        p.update(speedup=None, efficiency=None, karp_flatt=None, weak_efficiency=None, excluded=None)
        if p.get("oversubscribed"):
            p["excluded"] = "oversubscribed"
            continue
        if base is None:
            continue
        t, tb, n, nb = p["time_s"], base["time_s"], p["ranks"], base["ranks"]
        if kind == "strong":
            s = speedup(tb, t, nb)
            p["speedup"] = s
            p["efficiency"] = s / n
            p["karp_flatt"] = karp_flatt(s, n) if nb == 1 else None
        else:
            if nb != 1:
                p["excluded"] = "no 1-rank point"
                continue
            p["weak_efficiency"] = weak_efficiency(tb, t)
    return rows
