"""The options of one run, their defaults and their checks: one place for ``hpcdist run``,
``hpcdist slurm render`` and ``hpcdist bench``, so a value one of them accepts the others accept too."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from hpcdist.errors import UserError

CHECKPOINT_EVERY_S = 60.0
SCHEDULES = ("auto", "static", "dynamic")
RESTART_MODES = ("auto", "fresh", "require")


@dataclass
class RunOptions:
    """What the user asked for, as typed; :meth:`check` says what is wrong with it in one line."""

    input: str | None = None
    output: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    shard_rows: int | None = None
    checkpoint: str | None = None
    checkpoint_every: float = CHECKPOINT_EVERY_S
    checkpoint_every_shards: int | None = None
    restart: str = "auto"
    keep_checkpoint: bool = False
    schedule: str = "auto"          # static | dynamic | auto (see docs/schedule.md)
    progress: float | bool | None = None   # None: auto (tty 1 s, else 30 s); False: off; seconds: forced

    def check(self) -> None:
        """Raise UserError for a value no run could use (files are checked elsewhere)."""
        check_shard_rows(self.shard_rows)
        check_checkpoint_every(self.checkpoint_every)
        if self.checkpoint_every_shards is not None and self.checkpoint_every_shards < 1:
            raise UserError(f"--checkpoint-every-shards must be >= 1, got {self.checkpoint_every_shards}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.restart not in RESTART_MODES:
            raise UserError(f"--restart must be one of {', '.join(RESTART_MODES)}, got {self.restart!r}")
        if self.restart != "auto" and not self.checkpoint:
            raise UserError(f"--restart={self.restart} needs --checkpoint PATH")


def check_shard_rows(value: int | None) -> None:
    if value is not None and value < 1:
        raise UserError(f"--shard-rows must be >= 1, got {value}")


def check_checkpoint_every(value: float | None) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise UserError(f"--checkpoint-every must be > 0 seconds, got {value}")
