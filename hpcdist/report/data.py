"""The run record of an output file as arrays the summary and the plots share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hpcdist.errors import UserError
from hpcdist.output import read_record, read_result


@dataclass
class RunView:
    """One run: attributes, shard rows (all passes) and per-rank facts."""

    path: str
    attrs: dict[str, Any]
    shard: np.ndarray          # shard index per row
    pass_: np.ndarray          # pass index per row
    rank: np.ndarray           # mapping rank per row (-1: resumed from a checkpoint)
    read_start: np.ndarray     # seconds since the run's start
    read_end: np.ndarray
    compute_end: np.ndarray
    stolen: np.ndarray
    resumed: np.ndarray
    ranks: dict[str, np.ndarray]   # per rank: shards, read_s, compute_s, idle_s, reduce_s, ..., host
    checkpoints: np.ndarray        # (n, 2): rank 0's checkpoint writes, start and end

    @property
    def size(self) -> int:
        return int(self.attrs.get("ranks", len(self.ranks.get("shards", [])) or 1))

    @property
    def mapped(self) -> np.ndarray:
        return self.rank >= 0

    def rank_end(self) -> np.ndarray:
        """When each rank finished its last shard (NaN: it mapped none)."""
        end = np.full(self.size, -np.inf)
        m = self.mapped
        np.maximum.at(end, self.rank[m], self.compute_end[m])
        end[np.isneginf(end)] = np.nan
        return end


def load(path: str) -> RunView:
    """Read ``path``'s record; a result file written before records existed is a UserError."""
    _, attrs = read_result(path)
    rec = read_record(path)
    if "shards/rank" not in rec:
        raise UserError(f"{path}: no run record (/hpcdist/shards); it was written by an older hpcdist "
                        f"or by a run that computed nothing")
    ranks = {name.split("/", 1)[1]: value for name, value in rec.items() if name.startswith("ranks/")}
    ck = np.stack([rec.get("checkpoints/start", np.empty(0)), rec.get("checkpoints/end", np.empty(0))], axis=1)
    return RunView(path=path, attrs=attrs, shard=rec["shards/shard"], pass_=rec["shards/pass"],
                   rank=rec["shards/rank"], read_start=rec["shards/read_start"], read_end=rec["shards/read_end"],
                   compute_end=rec["shards/compute_end"], stolen=rec["shards/stolen"].astype(bool),
                   resumed=rec["shards/resumed"].astype(bool), ranks=ranks, checkpoints=ck)
