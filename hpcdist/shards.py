"""The plan: rows -> shards (aligned to the data's chunks) -> ranks (contiguous blocks).

Pure functions of (rows, row size, alignment, ranks), testable without MPI. The shard layout never
depends on the number of ranks: that is what lets the reduction give the same bits at any size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

TARGET_SHARD_BYTES = 4 << 20   # a few MB: big enough to amortise per-shard overhead
MIN_SHARD_BYTES = 256 << 10    # small data still gets split for parallelism...
TARGET_SHARDS = 256            # ...into about this many shards, whatever the rank count
# Keyed jobs (reduce by key): a shard's partial holds one entry per distinct key, so with many keys
# it is as big as the shard itself and the per-key merges cost ~ shards x keys per shard. Fewer,
# bigger shards cut that work (10^6 keys, 2.4 GB at 2 ranks: 7.9 s at 128 MB, 9.6-11.5 s at 64 MB);
# 16 of them still spread a small input over the ranks. Their number is a power of two, so that a
# power-of-two rank count holds whole tree nodes: each rank ends its map phase with one node of ~all
# keys instead of several, and the shuffle and the owners' merges shrink with it.
KEYED_TARGET_SHARD_BYTES = 128 << 20
KEYED_TARGET_SHARDS = 16


@dataclass(frozen=True)
class ShardPlan:
    """``shards`` shards of ``shard_rows`` rows each (the last may be shorter) over ``rows`` rows."""

    rows: int
    shard_rows: int

    def __post_init__(self) -> None:
        if self.rows < 1 or self.shard_rows < 1:
            raise ValueError(f"need rows >= 1 and shard_rows >= 1, got {self.rows}, {self.shard_rows}")

    @property
    def shards(self) -> int:
        return -(-self.rows // self.shard_rows)

    def bounds(self, shard: int) -> tuple[int, int]:
        """Global rows ``[start, stop)`` of ``shard``."""
        if not 0 <= shard < self.shards:
            raise IndexError(f"shard {shard} out of range 0..{self.shards - 1}")
        start = shard * self.shard_rows
        return start, min(start + self.shard_rows, self.rows)

    def block(self, rank: int, ranks: int) -> range:
        """The contiguous shards of ``rank`` under the static schedule (may be empty)."""
        return static_block(self.shards, rank, ranks)


def static_block(n: int, rank: int, ranks: int) -> range:
    """The static split, the one place it is defined: positions ``0..n-1`` in ``ranks`` contiguous
    runs in rank order, sizes differing by at most one; ``rank``'s run (may be empty).

    Both schedules start from it (dynamic claims from the front of it), so each rank first reads
    one contiguous stretch of the file.
    """
    return range(rank * n // ranks, (rank + 1) * n // ranks)


def static_blocks(shards: Sequence[int], rank: int, ranks: int) -> Sequence[int]:
    """``rank``'s run of ``shards`` (sorted) under the static split; after a resume, of the shards
    still to do."""
    block = static_block(len(shards), rank, ranks)
    return shards[block.start : block.stop]


def auto_shard_rows(rows: int, row_bytes: int, chunk_rows: int = 1, keyed: bool = False) -> int:
    """A shard height from the data alone: ~``TARGET_SHARD_BYTES`` (keyed jobs:
    ``KEYED_TARGET_SHARD_BYTES``), chunk-aligned.

    Small datasets are cut into about ``TARGET_SHARDS`` (keyed: ``KEYED_TARGET_SHARDS``) shards
    (no smaller than ``MIN_SHARD_BYTES``) so several ranks still get work.
    """
    row_bytes = max(row_bytes, 8)   # rows without stored values (range:N) count as 8 bytes
    total = rows * row_bytes
    if keyed:
        return _keyed_shard_rows(rows, total, chunk_rows)
    target = min(TARGET_SHARD_BYTES, max(MIN_SHARD_BYTES, total // TARGET_SHARDS))
    shard_rows = max(1, target // row_bytes)
    return align_shard_rows(shard_rows, chunk_rows, rows)


def _keyed_shard_rows(rows: int, total: int, chunk_rows: int) -> int:
    """A power-of-two number of shards near ~KEYED_TARGET_SHARD_BYTES each (at least
    KEYED_TARGET_SHARDS, none under MIN_SHARD_BYTES), rounded up to whole chunks."""
    want = max(total / KEYED_TARGET_SHARD_BYTES, KEYED_TARGET_SHARDS)
    want = max(1.0, min(want, total / MIN_SHARD_BYTES))
    shards = 1 << max(0, round(math.log2(want)))
    chunk = max(1, chunk_rows)
    shard_rows = -(-(-(-rows // shards)) // chunk) * chunk     # up to whole chunks: never more shards
    return max(1, min(shard_rows, rows))


def align_shard_rows(shard_rows: int, chunk_rows: int, rows: int) -> int:
    """Round to a whole number of chunks (at least one), never beyond the data."""
    chunk_rows = max(1, chunk_rows)
    aligned = max(chunk_rows, shard_rows - shard_rows % chunk_rows)
    return max(1, min(aligned, rows))


def plan_shards(rows: int, row_bytes: int, chunk_rows: int = 1, shard_rows: int | None = None,
                keyed: bool = False) -> ShardPlan:
    """The shard plan for a dataset; ``shard_rows`` given by the user is used as is."""
    if shard_rows is None:
        shard_rows = auto_shard_rows(rows, row_bytes, chunk_rows, keyed)
    return ShardPlan(rows=rows, shard_rows=max(1, min(shard_rows, rows)))
