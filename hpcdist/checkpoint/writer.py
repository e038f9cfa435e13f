"""Rank 0's checkpoint writes during a run: one generation per snapshot union, timed and counted.

A snapshot that cannot be written (full disk, quota) is a warning, never the end of the run: the
previous generation stays valid. Only the final write of a completed run (``--keep-checkpoint``)
is an error, because the user asked for that file.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from hpcdist.allocation import slurm_attrs
from hpcdist.checkpoint.store import Checkpoint, remove, save
from hpcdist.errors import WriteFailed
from hpcdist.partials import Node
from hpcdist.timings import RankProgress


class CheckpointWriter:
    """Writes generations ``generation + 1, + 2, ...`` of the checkpoint at ``path``."""

    def __init__(self, path: str, fingerprint: dict[str, Any], ranks: int, generation: int = 0) -> None:
        self.path, self.fingerprint, self.ranks, self.generation = path, fingerprint, ranks, generation
        self.seconds = 0.0      # spent in writes, reported as the output's checkpoint_s
        self.writes = 0

    def snapshot(self, nodes: list[Node], pass_index: int, progress: RankProgress,
                 state: dict[str, np.ndarray] | None) -> bool:
        """The union of the ranks' snapshots as the next generation; False (and a warning) if not written."""
        try:
            self._save(Checkpoint(fingerprint=self.fingerprint, pass_index=pass_index, nodes=nodes, state=state,
                                  allocation=slurm_attrs(), **self._common(progress)))
            return True
        except OSError as exc:
            print(f"hpcdist: warning: checkpoint not written to {self.path}: {exc}; "
                  f"the previous generation stays valid", file=sys.stderr, flush=True)
            return False

    def complete(self, results: dict[str, np.ndarray], progress: RankProgress) -> None:
        """The finished run's results, marked complete (``--keep-checkpoint``); WriteFailed if not written."""
        try:
            self._save(Checkpoint(fingerprint=self.fingerprint, pass_index=0, nodes=[], complete=True,
                                  results=results, **self._common(progress)))
        except OSError as exc:
            raise WriteFailed(f"cannot write checkpoint {self.path}: {exc.strerror or exc}") from None

    def remove(self) -> None:
        remove(self.path)

    def _common(self, progress: RankProgress) -> dict[str, Any]:
        self.generation += 1
        return {"generation": self.generation, "ranks": self.ranks, "rank_shards": progress.shards,
                "rank_busy_s": progress.busy_s}

    def _save(self, checkpoint: Checkpoint) -> None:
        t = time.perf_counter()
        try:
            save(self.path, checkpoint)
        finally:
            self.seconds += time.perf_counter() - t
            self.writes += 1
