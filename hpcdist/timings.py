"""Named records of where each rank's time went; they travel to rank 0 at the end of every pass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class RankTimings:
    """One rank's work in a run, summed over passes (seconds unless the name says otherwise)."""

    shards: int = 0
    compile_s: float = 0.0
    read_s: float = 0.0
    compute_s: float = 0.0
    reduce_s: float = 0.0
    idle_s: float = 0.0     # in the map phase but neither reading nor computing (claiming, waiting)
    claims: int = 0
    steals: int = 0
    schedule: str = "none"

    @property
    def busy_s(self) -> float:
        return self.read_s + self.compute_s

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> "RankTimings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in known})


@dataclass(frozen=True)
class RankProgress:
    """What rank 0 last heard of every rank: shards done and busy seconds (for checkpoints)."""

    shards: list[int]
    busy_s: list[float]
