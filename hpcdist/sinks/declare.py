"""What a job declares about the row datasets it writes: ``OUTPUTS = {"x": Output(rows="same")}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from hpcdist.errors import UserError

ROWS = ("same", "filter")


@dataclass(frozen=True)
class Output:
    """One written dataset. ``rows="same"``: one row out per row in (1:1); ``"filter"``: any number
    of rows per shard, in input order. ``dtype``/``row_shape`` left None are fixed by what
    ``transform`` returns for the first rows, then checked on every shard."""

    rows: str = "same"
    dtype: Any = None
    row_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.rows not in ROWS:
            raise ValueError(f"Output(rows=...) must be 'same' or 'filter', got {self.rows!r}")
        if self.dtype is not None:
            object.__setattr__(self, "dtype", np.dtype(self.dtype))
        if self.row_shape is not None:
            object.__setattr__(self, "row_shape", tuple(int(n) for n in self.row_shape))


def parse_outputs(value: object, has_transform: bool, path: str) -> dict[str, Output]:
    """A job module's ``OUTPUTS`` checked: names are plain dataset names, values are Output."""
    if value is None:
        if has_transform:
            raise UserError(f"{path}: a job with transform() declares OUTPUTS = {{name: hpcdist.sinks.Output(...)}}")
        return {}
    if not has_transform:
        raise UserError(f"{path}: OUTPUTS declared but no transform(shard, ctx) function")
    if not isinstance(value, Mapping) or not value or not all(isinstance(o, Output) for o in value.values()):
        raise UserError(f"{path}: OUTPUTS must map dataset names to hpcdist.sinks.Output(...)")
    for name in value:
        if not isinstance(name, str) or not name or "/" in name or name.startswith("hpcdist"):
            raise UserError(f"{path}: OUTPUTS name {name!r} is not a plain dataset name")
    return dict(value)
