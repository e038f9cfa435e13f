"""Each shipped job agrees with a plain numpy computation of the same thing."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from hpcdist.comm import world
from hpcdist.job import load_job
from hpcdist.runtime import RunOptions, run

from conftest import JOBS, hpcdist


def run_job(name, input=None, shard_rows=None, **params):
    job = load_job(str(JOBS / f"{name}.py"))
    opts = RunOptions(input=input, params={k: str(v) for k, v in params.items()}, shard_rows=shard_rows)
    return run(job, opts, world()).results


def columns(path):
    with h5py.File(path) as f:
        return f["/grp/x"][()]


def test_stats_matches_numpy_per_column_with_nans(small_h5):
    data = columns(small_h5)
    res = run_job("stats", f"{small_h5}:/grp/x", shard_rows=1000, bins=16)
    for j in range(data.shape[1]):
        col = data[:, j][~np.isnan(data[:, j])]
        hist, edges = np.histogram(col, 16)
        assert res["count"][j] == col.size
        assert res["nan_count"][j] == data.shape[0] - col.size
        assert np.array_equal(res["hist"][j], hist)
        assert np.array_equal(res["hist_edges"][j], edges)
        assert res["min"][j] == col.min() and res["max"][j] == col.max()
        assert res["mean"][j] == pytest.approx(col.mean(), rel=1e-13)
        assert res["var"][j] == pytest.approx(col.var(), rel=1e-12)
        assert res["sum"][j] == pytest.approx(col.sum(), rel=1e-13)


def test_stats_with_a_fixed_range_matches_numpy_exactly_on_bin_edges(tmp_path):
    edges = np.linspace(-1, 1, 9)
    data = np.concatenate([edges, np.nextafter(edges, -2), np.nextafter(edges, 2), [np.nan, 5, -5]])
    path = tmp_path / "edges.npy"
    np.save(path, data)
    res = run_job("stats", str(path), bins=8, lo=-1, hi=1)
    clean = data[~np.isnan(data)]
    assert np.array_equal(res["hist"], np.histogram(clean, 8, (-1, 1))[0])
    assert res["count"] == clean.size and res["nan_count"] == 1


def test_stats_on_1d_integer_data_reports_scalars(tmp_path):
    data = np.random.default_rng(3).integers(-50, 50, 12345).astype(np.int32)
    path = tmp_path / "ints.npy"
    np.save(path, data)
    res = run_job("stats", str(path), shard_rows=1000, bins=10)
    assert res["count"].shape == () and res["count"] == data.size
    assert np.array_equal(res["hist"], np.histogram(data, 10)[0])
    assert res["min"] == data.min() and res["max"] == data.max()
    assert res["var"] == pytest.approx(data.var(), rel=1e-12)


def test_stats_variance_survives_a_large_offset(tmp_path):
    data = 1e9 + np.random.default_rng(4).normal(size=100_000)
    path = tmp_path / "offset.npy"
    np.save(path, data)
    res = run_job("stats", str(path), shard_rows=7_000)
    assert res["var"] == pytest.approx(np.var(data - 1e9), rel=1e-6)


def test_stats_on_float32_data_gives_the_statistics_of_its_exact_float64_values(tmp_path):
    """float32 values are widened exactly: the same bits as the float64 copy, numpy's histogram."""
    rng = np.random.default_rng(9)
    data = rng.normal(2.0, 3.0, (20_000, 3)).astype(np.float32)
    data[rng.random(data.shape) < 0.01] = np.nan
    np.save(tmp_path / "f32.npy", data)
    np.save(tmp_path / "f64.npy", data.astype(np.float64))
    res = run_job("stats", str(tmp_path / "f32.npy"), shard_rows=3000, bins=20)
    wide = run_job("stats", str(tmp_path / "f64.npy"), shard_rows=3000, bins=20)
    for key in wide:
        assert res[key].dtype == wide[key].dtype and res[key].tobytes() == wide[key].tobytes(), key
    for j in range(data.shape[1]):
        col = data[:, j][~np.isnan(data[:, j])].astype(np.float64)
        hist, edges = np.histogram(col, 20)
        assert np.array_equal(res["hist"][j], hist) and np.array_equal(res["hist_edges"][j], edges)
        assert res["min"][j] == col.min() and res["max"][j] == col.max()
        assert res["mean"][j] == pytest.approx(col.mean(), rel=1e-13)
        assert res["var"][j] == pytest.approx(col.var(), rel=1e-12)


@pytest.mark.parametrize("cols,most", [(4, 4_194_304), (1, 16_777_216)])
def test_stats_refuses_bins_that_would_not_fit_in_memory_before_any_work(tmp_path, cols, most):
    """--param bins=1e12 would allocate cols * bins * 8 bytes per partial: one line, exit 2."""
    args = []
    if cols == 1:
        np.save(tmp_path / "ones.npy", np.ones(10))
        args = ["--input", str(tmp_path / "ones.npy")]
    out = tmp_path / "out.h5"
    proc = hpcdist("run", str(JOBS / "stats.py"), *args, "--param", "bins=1e12", "--output", str(out),
                   timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"hpcdist: error: param bins must be <= {most} for {cols} column(s) (histograms of at most 128 MiB: "
        f"cols * bins * 8 bytes), got 1000000000000"]
    assert proc.stdout == "" and not out.exists()


def _pi_hits_numpy(seed, n):
    """The job's generator written again in numpy: sample i's point depends on (seed, i) only."""
    m = np.uint64(0xFFFFFFFFFFFFFFFF)

    def mix(z):
        with np.errstate(over="ignore"):
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9) & m
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB) & m
            return z ^ (z >> np.uint64(31))

    with np.errstate(over="ignore"):
        key = mix(np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(1))
        i = np.arange(n, dtype=np.uint64)
        x = (mix(key ^ (i * np.uint64(2))) >> np.uint64(11)).astype(np.float64) * 2.0**-53
        y = (mix(key ^ (i * np.uint64(2) + np.uint64(1))) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return int((x * x + y * y < 1.0).sum())


def test_montecarlo_pi_counts_the_same_hits_as_numpy():
    res = run_job("montecarlo_pi", shard_rows=777, samples=100_000, seed=3)
    assert res["samples"] == 100_000
    assert res["hits"] == _pi_hits_numpy(3, 100_000)
    assert abs(res["pi"] - np.pi) < 0.02


def test_kmeans_matches_lloyd_in_numpy_from_the_same_start(tmp_path):
    rng = np.random.default_rng(5)
    centres = np.array([[0, 0], [5, 5], [0, 8]])
    data = np.concatenate([c + rng.normal(size=(3000, 2)) for c in centres])
    rng.shuffle(data)
    path = tmp_path / "blobs.npy"
    np.save(path, data)
    res = run_job("kmeans", str(path), shard_rows=1000, k=3, iters=5, tol=0, seed=1, sample=500)

    job = load_job(str(JOBS / "kmeans.py"))
    import sys
    module = sys.modules[job.map.__module__]
    idx = np.sort(np.random.Generator(np.random.Philox(key=1)).choice(len(data), 500, replace=False))
    c = module._kmeans_pp(data[idx], 3, 1)
    for _ in range(5):
        d2 = ((data[:, None, :] - c[None]) ** 2).sum(-1)
        label = d2.argmin(1)
        counts = np.bincount(label, minlength=3)
        inertia = d2.min(1).sum()
        c = np.array([data[label == j].mean(0) if counts[j] else c[j] for j in range(3)])
    assert res["iterations"] == 5
    assert np.array_equal(res["counts"], counts)
    assert np.allclose(res["centroids"], c, rtol=1e-12)
    assert res["inertia"] == pytest.approx(inertia, rel=1e-12)
    assert sorted(np.round(res["centroids"]).tolist()) == sorted(centres.tolist())


def test_kmeans_stops_early_when_centroids_settle(tmp_path):
    rng = np.random.default_rng(8)
    data = np.concatenate([c + 0.1 * rng.normal(size=(2000, 2)) for c in ([0, 0], [9, 9])])
    path = tmp_path / "two.npy"
    np.save(path, data)
    res = run_job("kmeans", str(path), k=2, iters=50, tol=1e-9)
    assert 2 <= res["iterations"] < 10


def test_topk_matches_numpy_with_ties_broken_by_row(tmp_path):
    data = np.random.default_rng(6).integers(0, 50, 20_000).astype(np.int64)
    path = tmp_path / "ints.npy"
    np.save(path, data)
    res = run_job("topk", str(path), shard_rows=999, k=25)
    order = np.lexsort((np.arange(data.size), -data))[:25]
    assert np.array_equal(res["values"], data[order])
    assert np.array_equal(res["rows"], order)


def test_topk_skips_nans_and_handles_k_larger_than_a_shard(tmp_path):
    data = np.random.default_rng(7).normal(size=5000)
    data[::7] = np.nan
    path = tmp_path / "f.npy"
    np.save(path, data)
    res = run_job("topk", str(path), shard_rows=10, k=40)
    clean = np.where(np.isnan(data), -np.inf, data)
    order = np.argsort(-clean, kind="stable")[:40]
    assert np.array_equal(res["rows"], order) and np.array_equal(res["values"], data[order])


@pytest.mark.parametrize("name", sorted(p.stem for p in JOBS.glob("*.py")))
def test_every_shipped_job_runs_on_its_own_default_input(name, tmp_path):
    # `hpcdist run jobs/X.py` with no --input is the first thing a new user types
    proc = hpcdist("run", str(JOBS / f"{name}.py"), "--output", str(tmp_path / "out.h5"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.h5").stat().st_size > 0
