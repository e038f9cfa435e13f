"""The data a benchmark runs on: which kind a job wants, its input spec, and the HDF5 file made once.

Files are made with ``hpcdist gen``'s own code (seeded N(0, 1) float64, dataset ``/x``) and reused
while their shape matches, so every benchmark and every launch reads the same bytes.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import numpy as np

from hpcdist.errors import UserError

DATA_KINDS = ("auto", "h5", "synthetic", "range")


def data_kind(job: Any, params: Mapping[str, Any], wanted: str) -> str:
    """``auto``: ``range`` for jobs whose own input is ``range:N`` (they make their own numbers,
    e.g. Monte-Carlo pi), else an HDF5 file made once in the data directory."""
    if wanted not in DATA_KINDS:
        raise UserError(f"--data must be one of {', '.join(DATA_KINDS)}, got {wanted!r}")
    if wanted != "auto":
        return wanted
    default = job.default_input(params) if job.default_input else ""
    return "range" if default.startswith("range:") else "h5"


def input_spec(kind: str, rows: int, cols: int, data_dir: str) -> str:
    """The input spec of ``rows`` x ``cols`` of the given kind (an HDF5 file named by its shape)."""
    if kind == "range":
        return f"range:{rows}"
    if kind == "synthetic":
        return f"synthetic:rows={rows},cols={cols},seed=0"
    return f"{os.path.join(data_dir, f'bench-{rows}x{cols}-float64.h5')}:/x"


def ensure_h5(spec: str, rows: int, cols: int, say: Callable[[str], None]) -> None:
    """The seeded N(0, 1) float64 dataset of ``spec`` (``FILE.h5:/x``), made with ``hpcdist gen``'s
    code if missing (reused when the shape matches)."""
    import h5py
    from hpcdist.generate import generate
    from hpcdist.sources.synthetic import SyntheticSource

    path = spec.rpartition(":")[0]
    if os.path.exists(path):
        try:
            with h5py.File(path, "r") as f:
                if f["/x"].shape == ((rows, cols) if cols != 1 else (rows,)) and f["/x"].dtype == np.float64:
                    return
        except (OSError, KeyError):
            pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    say(f"hpcdist bench: writing {path}: {rows:,} x {cols} float64 ({rows * cols * 8 / 1e9:.2f} GB) ...")
    generate(f"{path}:/x", SyntheticSource(rows, cols, "float64", 0, "normal", 0.0))
