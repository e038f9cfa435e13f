"""What a job's functions see about the shard and the run they are working on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np


@dataclass(frozen=True)
class ShardContext:
    """Given to ``map(shard, ctx)``, ``init(ctx)``, ``update(...)`` and ``finalize(partial, ctx)``.

    ``start``/``stop`` are the shard's global rows; ``index`` its number in row order (-1 outside a
    shard). ``state`` is the multi-pass state (e.g. k-means centroids) of the current ``pass_index``.
    """

    params: Mapping[str, Any]
    rows: int
    row_shape: tuple[int, ...]
    dtype: np.dtype
    index: int = -1
    start: int = 0
    stop: int = 0
    pass_index: int = 0
    state: Mapping[str, np.ndarray] | None = None
    sample: Any = field(default=None, repr=False)

    @property
    def cols(self) -> int:
        """Values per row (1 for a 1-D dataset)."""
        return int(np.prod(self.row_shape)) if self.row_shape else 1
