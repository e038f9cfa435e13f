"""Where a run starts: from scratch, or from the checkpoint a killed run left (any rank count).

Rank 0 finds, verifies and loads the checkpoint; every rank learns the small :class:`ResumePoint`
(which pass, which tree nodes are done); only rank 0 keeps the loaded nodes and state, which it
merges into the tree and broadcasts.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from hpcdist.checkpoint import Checkpoint, differences, load, remove
from hpcdist.errors import UserError
from hpcdist.options import RunOptions
from hpcdist.tree import count_under


@dataclass(frozen=True)
class ResumePoint:
    """A pass, the tree nodes ``(level, index)`` already folded in it, and what else was saved."""

    pass_index: int = 0
    done: tuple[tuple[int, int], ...] = ()
    complete: bool = False
    generation: int = 0
    has_state: bool = False

    def shards_done(self, shards: int) -> int:
        return count_under(self.done, shards)


@dataclass
class CheckpointFinder:
    """``world.agree(finder.find)`` gives every rank the resume point; rank 0 keeps ``loaded``."""

    options: RunOptions
    fingerprint: dict[str, Any]
    loaded: Checkpoint | None = field(default=None, init=False)

    def find(self) -> ResumePoint:
        """Rank 0: the checkpoint to resume from (or none), checked against this run's fingerprint."""
        path, restart = self.options.checkpoint, self.options.restart
        if not path:
            return ResumePoint()
        if restart == "fresh":
            remove(path)
            return ResumePoint()
        found, warnings = load(path)
        for warning in warnings:
            print(f"hpcdist: warning: {warning}", file=sys.stderr, flush=True)
        if found is None:
            if restart == "require":
                raise UserError(f"--restart=require: there is no checkpoint at {path}")
            return ResumePoint()
        diffs = differences(found.fingerprint, self.fingerprint)
        if diffs:
            raise UserError(f"checkpoint {path} belongs to another run: {'; '.join(diffs)} "
                            f"(use --restart=fresh to start over)")
        self.loaded = found
        _announce(path, found)
        return ResumePoint(pass_index=found.pass_index, done=tuple((lv, ix) for lv, ix, _ in found.nodes),
                           complete=found.complete, generation=found.generation,
                           has_state=found.state is not None)


def _announce(path: str, found: Checkpoint) -> None:
    what = "complete" if found.complete else f"{found.shards_done():,} of {found.shards:,} shards done"
    in_pass = f" in pass {found.pass_index + 1}" if found.state is not None else ""
    print(f"hpcdist: resuming from {path}: {what}{in_pass} (generation {found.generation}, "
          f"written {found.written_utc} by {found.ranks} rank(s))", file=sys.stderr, flush=True)
