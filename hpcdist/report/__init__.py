"""``hpcdist report OUT.h5 [--out DIR]``: what happened in a run, per rank, from its output file.

The output's run record (:mod:`hpcdist.runlog`: one row per shard and pass, one per rank) is all
it reads. It prints a text summary (time by phase, imbalance, stragglers, GB/s, resumed shards)
and writes PNGs into DIR: ``timeline.png`` (per rank: reading, computing, stolen shards, idle or
waiting, checkpoint writes; a heat map of busy time once there are too many ranks for one bar
each), ``busy.png`` (per-rank busy and idle seconds) and ``shards.png`` (which rank mapped each
shard; shards resumed from a checkpoint marked).
"""

from __future__ import annotations

import os

from hpcdist.report.data import RunView, load
from hpcdist.report.summary import summary

__all__ = ["RunView", "load", "make_report", "summary"]


def make_report(path: str, out_dir: str) -> str:
    """Write the PNGs of the run in ``path`` into ``out_dir`` (created if missing); return the text."""
    from hpcdist.report.plots import write_pngs   # matplotlib only here

    view = load(path)
    os.makedirs(out_dir, exist_ok=True)
    written = write_pngs(view, out_dir)
    return summary(view) + "\n\nwrote " + ", ".join(written)
