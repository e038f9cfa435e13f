"""Does a peer compute what hpcdist computes? Counts and histograms exactly, the rest within a tolerance.

A disagreement voids the comparison (:class:`PeerMismatch`, naming the peer, the field and the
first element that differs): a time is only worth reporting for a right answer.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

FIELDS = ("count", "nan_count", "sum", "mean", "var", "min", "max", "hist")
EXACT = ("count", "nan_count", "min", "max", "hist")
RTOL = 1e-9


class PeerMismatch(Exception):
    """A peer's result differs from hpcdist's: the comparison is void."""

    def __init__(self, peer: str, field_name: str, detail: str) -> None:
        super().__init__(f"peer {peer} disagrees with hpcdist_n1 on {field_name}: {detail}; no times reported")
        self.peer, self.field = peer, field_name


def cross_check(peer: str, ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray],
                rtol: float = RTOL) -> dict[str, Any]:
    """Raise PeerMismatch on the first field where ``got`` differs from ``ref``; else the max
    relative differences of the floating-point fields."""
    diffs: dict[str, float] = {}
    for name in FIELDS:
        if name not in got:
            raise PeerMismatch(peer, name, "missing from its results")
        a = np.asarray(ref[name], dtype=np.float64).reshape(-1)
        b = np.asarray(got[name], dtype=np.float64).reshape(-1)
        if a.shape != b.shape:
            raise PeerMismatch(peer, name, f"shape {b.shape} instead of {a.shape}")
        both_nan = np.isnan(a) & np.isnan(b)
        if name in EXACT:
            bad = ~((a == b) | both_nan)
            if bad.any():
                i = int(np.argmax(bad))
                raise PeerMismatch(peer, name, f"element {i}: {b[i]!r} instead of {a[i]!r} "
                                               f"({int(bad.sum())} element(s) differ; must be exact)")
            continue
        scale = np.maximum(np.abs(a), np.abs(b))
        if name in ("sum", "mean"):       # sums of values near zero: tolerance on the data's magnitude
            spread = np.sqrt(np.abs(np.asarray(ref["var"], dtype=np.float64).reshape(-1)))
            amp = np.maximum(np.abs(np.asarray(ref["min"], dtype=np.float64)),
                             np.abs(np.asarray(ref["max"], dtype=np.float64))).reshape(-1)
            counts = np.asarray(ref["count"], dtype=np.float64).reshape(-1)
            mag = np.maximum(spread, amp) * (counts if name == "sum" else 1.0)
            scale = np.maximum(scale, np.nan_to_num(mag) * 1e-6)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(both_nan | (a == b), 0.0, np.abs(a - b) / scale)
        rel = np.nan_to_num(rel, nan=np.inf)
        worst = float(rel.max()) if rel.size else 0.0
        if worst > rtol:
            i = int(np.argmax(rel))
            raise PeerMismatch(peer, name, f"element {i}: {b[i]!r} instead of {a[i]!r} "
                                           f"(relative difference {worst:.3g} > {rtol:g})")
        diffs[name] = worst
    return diffs
