"""The group-by benchmark's peers compute what jobs/groupby.py computes, checked against numpy:
the hand-written mpi4py + numba script at 1, 2 and 3 ranks (many keys, so its table grows; NaNs; a
key column that is not the first; pieces smaller than a rank's block), its bad-key and empty-input
behaviour, and the pandas and dask (threads) peers of benchmarks/bench_groupby.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import launch_env, mpiexec

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[1]
HANDWRITTEN = ROOT / "benchmarks" / "peers" / "groupby_handwritten.py"
STATS = ("count", "sum", "mean", "var", "min", "max")


def make_input(path: Path, rows: int, keys: int, key_col: int = 0, cols: int = 3, seed: int = 0) -> np.ndarray:
    """rows x cols float64 with integer keys (negative ones too), 5% NaNs in one value column and
    one key whose last value column is all NaN."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, cols)) * 3 + 5
    a[:, key_col] = (rng.integers(0, keys, rows) - keys // 2) * 7919
    values = [c for c in range(cols) if c != key_col]
    if rows:
        a[rng.random(rows) < 0.05, values[0]] = np.nan
        a[a[:, key_col] == a[0, key_col], values[-1]] = np.nan
    with h5py.File(path, "w") as f:
        f.create_dataset("e", data=a, chunks=(min(rows, 500), cols) if rows else None)
    return a


def numpy_groupby(a: np.ndarray, key_col: int = 0) -> dict[str, np.ndarray]:
    keys = a[:, key_col].astype(np.int64)
    values = np.delete(a, key_col, axis=1)
    uniq, inverse = np.unique(keys, return_inverse=True)
    out = {"keys": uniq, **{s: np.full((len(uniq), values.shape[1]), np.nan) for s in STATS}}
    for t in range(len(uniq)):
        for j in range(values.shape[1]):
            x = values[inverse == t, j]
            x = x[~np.isnan(x)]
            out["count"][t, j], out["sum"][t, j] = len(x), x.sum()
            if len(x):
                out["mean"][t, j], out["var"][t, j], out["min"][t, j], out["max"][t, j] = \
                    x.mean(), x.var(), x.min(), x.max()
    out["count"] = out["count"].astype(np.int64)
    return out


def assert_matches(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> None:
    """keys, counts, min and max exactly; sum, mean, var to 1e-9 (the benchmark's check)."""
    for name, want in expected.items():
        have = np.asarray(got[name])
        assert have.shape == want.shape and have.dtype == want.dtype, (name, have.shape, have.dtype)
        if name in ("keys", "count", "min", "max"):
            assert np.array_equal(have, want, equal_nan=True), name
        else:
            assert np.allclose(have, want, rtol=1e-9, atol=1e-12, equal_nan=True), name


def handwritten(ranks: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([mpiexec(), "-n", str(ranks), sys.executable, str(HANDWRITTEN), *args],
                          capture_output=True, text=True, env=launch_env(), timeout=120)


def read(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in ("keys", *STATS)}


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_handwritten_peer_matches_numpy(tmp_path, ranks):
    a = make_input(tmp_path / "in.h5", rows=12_000, keys=6_000, key_col=1, cols=4)
    out = tmp_path / "out.h5"
    proc = handwritten(ranks, f"{tmp_path / 'in.h5'}:/e", str(out), "--key", "1", "--piece-mb", "0.02")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_matches(numpy_groupby(a, key_col=1), read(out))


def test_handwritten_peer_empty_input_gives_empty_results(tmp_path):
    a = make_input(tmp_path / "in.h5", rows=0, keys=5)
    proc = handwritten(2, f"{tmp_path / 'in.h5'}:/e", str(tmp_path / "out.h5"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_matches(numpy_groupby(a), read(tmp_path / "out.h5"))


def test_handwritten_peer_bad_key_is_one_line_exit_2(tmp_path):
    a = np.ones((3000, 3))
    a[:, 0] = np.arange(3000) % 7
    a[2100, 0] = 2.5
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f.create_dataset("e", data=a, chunks=(100, 3))
    proc = handwritten(3, f"{tmp_path / 'in.h5'}:/e", str(tmp_path / "out.h5"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"groupby_handwritten: {tmp_path / 'in.h5'}:/e: row 2100: key column 0 "
                                   f"holds 2.5, not an integer value")
    assert not (tmp_path / "out.h5").exists()


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_groupby", ROOT / "benchmarks" / "bench_groupby.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("peer", ["pandas", "dask_threads"])
def test_pandas_and_dask_peers_match_numpy(tmp_path, peer):
    bench = bench_module()
    a = make_input(tmp_path / "in.h5", rows=20_000, keys=3_000)
    data, out = f"{tmp_path / 'in.h5'}:/e", str(tmp_path / "out.h5")
    if peer == "pandas":
        bench.peer_pandas(data, out)
    else:
        bench.peer_dask(data, out, "threads", "7000")
    assert_matches(numpy_groupby(a), read(Path(out)))
