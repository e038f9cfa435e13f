"""The stats job's statistics in plain numpy, piece by piece: the numpy and multiprocessing peers.

Per column: count, nan_count, sum, mean, M2, min, max and numpy.histogram's counts over [lo, hi];
pieces merge with Chan et al.'s update, so any split of the rows gives the same statistics (to
rounding). Written from the definitions, not from hpcdist's kernels: it is what the kernels are
checked against.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np


def piece_partial(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, bins: int) -> dict[str, np.ndarray]:
    """count, nan_count, sum, mean, M2, min, max, hist of each column of the piece x (n, c)."""
    finite = ~np.isnan(x)
    count = finite.sum(axis=0).astype(np.int64)
    total = np.where(finite, x, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
        d = np.where(finite, x - mean, 0.0)
    m2 = (d * d).sum(axis=0)
    with np.errstate(invalid="ignore"):
        mn = np.where(count > 0, np.fmin.reduce(x, axis=0), np.inf)
        mx = np.where(count > 0, np.fmax.reduce(x, axis=0), -np.inf)
    hist = np.stack([np.histogram(x[:, j], bins=bins, range=(lo[j], hi[j]))[0] for j in range(x.shape[1])])
    return {"count": count, "nan_count": x.shape[0] - count, "sum": total, "mean": mean, "m2": m2,
            "min": mn, "max": mx, "hist": hist.astype(np.int64)}


def merge(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Chan et al.'s merge of two partials (a covers earlier rows)."""
    n = a["count"] + b["count"]
    share = np.divide(b["count"], n, out=np.zeros(n.shape), where=n > 0)
    delta = b["mean"] - a["mean"]
    return {"count": n, "nan_count": a["nan_count"] + b["nan_count"], "sum": a["sum"] + b["sum"],
            "mean": a["mean"] + delta * share, "m2": a["m2"] + b["m2"] + delta * delta * (a["count"] * share),
            "min": np.fmin(a["min"], b["min"]), "max": np.fmax(a["max"], b["max"]), "hist": a["hist"] + b["hist"]}


def finish(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    none = p["count"] == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(none, np.nan, p["m2"] / p["count"])
    return {"count": p["count"], "nan_count": p["nan_count"], "sum": p["sum"],
            "mean": np.where(none, np.nan, p["mean"]), "var": var,
            "min": np.where(none, np.nan, p["min"]), "max": np.where(none, np.nan, p["max"]), "hist": p["hist"]}


def block_pieces(path: str, dataset: str, start: int, stop: int, piece_rows: int) -> Iterator[np.ndarray]:
    """Rows [start, stop) of the dataset as (n, cols) pieces read into one reused buffer."""
    import h5py

    with h5py.File(path, "r") as f:
        ds = f[dataset]
        cols = int(np.prod(ds.shape[1:])) if ds.ndim > 1 else 1
        buf = np.empty((piece_rows, *ds.shape[1:]), ds.dtype)
        for a in range(start, stop, piece_rows):
            b = min(a + piece_rows, stop)
            ds.read_direct(buf, np.s_[a:b], np.s_[0:b - a])
            yield buf[: b - a].reshape(b - a, cols)


def fold_pieces(pieces: Iterable[np.ndarray], partial: Callable[..., dict], lo, hi, bins: int
                ) -> dict[str, np.ndarray] | None:
    """The pieces' partials merged in row order (None for no rows): one worker's task."""
    acc = None
    for x in pieces:
        part = partial(x, lo, hi, bins)
        acc = part if acc is None else merge(acc, part)
    return acc


def block_partial(path: str, dataset: str, start: int, stop: int, lo, hi, bins: int,
                  piece_rows: int) -> dict[str, np.ndarray] | None:
    """Rows [start, stop) of the dataset, read piece by piece into one buffer (a worker's task)."""
    pieces = (x.astype(np.float64, copy=False) for x in block_pieces(path, dataset, start, stop, piece_rows))
    return fold_pieces(pieces, piece_partial, np.asarray(lo), np.asarray(hi), bins)


def blocks(rows: int, parts: int, align: int) -> list[tuple[int, int]]:
    units = -(-rows // align)
    return [(min(rows, i * units // parts * align), min(rows, (i + 1) * units // parts * align)) for i in range(parts)]


def finite_range(path: str, dset: str, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Each column's finite min and max, widened like numpy (and the stats job) for an empty range."""
    import h5py
    lo, hi = np.full(cols, np.inf), np.full(cols, -np.inf)
    with h5py.File(path, "r") as f:
        ds = f[dset]
        step = max(1, (64 << 20) // (8 * cols))
        for a in range(0, rows, step):
            x = np.asarray(ds[a:min(rows, a + step)], dtype=np.float64).reshape(-1, cols)
            x = np.where(np.isfinite(x), x, np.nan)
            with np.errstate(invalid="ignore"):
                lo = np.fmin(lo, np.nanmin(x, axis=0))
                hi = np.fmax(hi, np.nanmax(x, axis=0))
    empty = ~(lo <= hi)
    lo[empty], hi[empty] = 0.0, 1.0
    same = lo == hi
    lo[same] -= 0.5
    hi[same] += 0.5
    return lo, hi
