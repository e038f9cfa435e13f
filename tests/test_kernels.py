"""hpcdist.kernels against numpy, edge case by edge case (no MPI).

- ``column_stats``: count, nan_count and histogram exactly as numpy (numpy.histogram with the
  column's NaNs removed, its bin edges np.linspace(lo, hi, bins + 1), values equal to hi in the last
  bin); min/max exactly; sum/mean/M2 close to numpy and, bit for bit, equal to a plain-Python model
  of the kernel's documented order of operations (8 lanes, a fixed tree, Chan merges per block):
  the order is fixed by the source, not by the CPU's vector width.
- ``finite_range``: per-column min and max of the finite values, exactly.
- The public edge: every real dtype in any byte order, 1-D or 2-D; anything else is refused with
  a precise error before the compiled code sees it; the package runs without mpi4py.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from hpcdist import kernels

BLOCK, LANES = kernels.BLOCK_ROWS, kernels.LANES


def f64(v):
    return np.float64(v)


def kernel(x, lo, hi, bins):
    x = np.ascontiguousarray(x) if x.ndim == 2 else x.reshape(-1, 1)
    c = x.shape[1]
    lo = np.broadcast_to(np.asarray(lo, float), (c,)).copy()
    hi = np.broadcast_to(np.asarray(hi, float), (c,)).copy()
    names = ("count", "nan_count", "sum", "mean", "m2", "min", "max", "hist")
    return dict(zip(names, kernels.column_stats(x, lo, hi, bins))), lo, hi


def numpy_hist(col, bins, lo, hi):
    """numpy's histogram in float64 (the kernel's arithmetic for any input dtype), or None where
    numpy refuses the range (bins narrower than its floating point can separate)."""
    good = col[~np.isnan(col)].astype(np.float64)
    try:
        with np.errstate(all="ignore"):
            return np.histogram(good, bins, range=(f64(lo), f64(hi)))[0]
    except ValueError:
        return None


def check_against_numpy(x, lo, hi, bins, rel=1e-12):
    x2 = x if x.ndim == 2 else x.reshape(-1, 1)
    r, lo, hi = kernel(x2, lo, hi, bins)
    for j in range(x2.shape[1]):
        col = x2[:, j].astype(np.float64)
        good = col[~np.isnan(col)]
        assert r["count"][j] == good.size
        assert r["nan_count"][j] == col.size - good.size
        expect = numpy_hist(col, bins, lo[j], hi[j])
        inside = np.count_nonzero((good >= lo[j]) & (good <= hi[j]))
        assert r["hist"][j].sum() == inside
        if expect is not None:
            np.testing.assert_array_equal(r["hist"][j], expect, err_msg=f"column {j}")
        if good.size == 0:
            assert r["sum"][j] == 0 and r["mean"][j] == 0 and r["m2"][j] == 0
            assert r["min"][j] == np.inf and r["max"][j] == -np.inf
            continue
        assert r["min"][j] == good.min() and r["max"][j] == good.max()
        if np.isfinite(good).all() and np.abs(good).max() < 1e150:
            scale = np.abs(good).sum()
            assert abs(r["sum"][j] - good.sum()) <= 1e-13 * scale + 1e-300
            assert r["mean"][j] == pytest.approx(good.mean(), rel=rel, abs=1e-14 * scale / good.size)
            var = good.var()   # ill-conditioned data (|mean| >> std) loses digits in any method
            slack = 1e-13 * abs(good.mean()) * var ** 0.5
            assert r["m2"][j] / good.size == pytest.approx(var, rel=rel, abs=slack)
    return r


# ---- histograms: numpy's bins exactly ---------------------------------------------------------

@pytest.mark.parametrize("lo,hi,bins", [(-1, 1, 8), (-5, 5, 64), (0.1, 0.7, 3), (-3, 9, 7), (1e-3, 2e-3, 10),
                                        (-1e300, 1e300, 64), (123456.789, 123456.791, 17), (0, 1, 1)])
def test_values_on_every_edge_and_one_ulp_either_side(lo, hi, bins):
    edges = np.linspace(f64(lo), f64(hi), bins + 1)
    mid = (edges[:-1] + edges[1:]) / 2
    x = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf), mid,
                        np.nextafter(edges, -np.inf) * (1 + 1e-15), [lo, hi, np.nan, np.inf, -np.inf]])
    check_against_numpy(x, lo, hi, bins)
    check_against_numpy(np.random.default_rng(0).permutation(x), lo, hi, bins)


def test_random_ranges_and_dense_edges_match_numpy():
    rng = np.random.default_rng(1)
    for trial in range(40):
        bins = int(rng.integers(1, 300))
        lo = rng.normal() * 10.0 ** rng.integers(-5, 6)
        hi = lo + abs(rng.normal()) * 10.0 ** rng.integers(-5, 6) + 1e-300
        edges = np.linspace(lo, hi, bins + 1)
        x = np.concatenate([rng.uniform(lo - (hi - lo) * 0.1, hi + (hi - lo) * 0.1, 3001),
                            rng.choice(edges, 500), np.nextafter(rng.choice(edges, 500), -np.inf),
                            np.nextafter(rng.choice(edges, 500), np.inf)])
        check_against_numpy(rng.permutation(x), lo, hi, bins)


@pytest.mark.parametrize("lo,hi", [(1.0, 1.0 + 64 * 2.0**-39), (1.0, 1.0 + 64 * 2.0**-41), (1.0, 1.0 + 1e-13),
                                   (1.0, 1.0 + 2e-14), (1e6, 1e6 + 1e-7), (0.0, 1e-300), (0.0, 5e-324),
                                   (1.0, 1.0 + 1e-15),
                                   (-1e308, 1e308), (-np.finfo(float).max, np.finfo(float).max)])
def test_tiny_bins_and_overflowing_ranges(lo, hi):
    """Bins a few ulps wide take numpy's own arithmetic; where numpy refuses the range, every
    value in [lo, hi] still lands in exactly one bin."""
    rng = np.random.default_rng(2)
    with np.errstate(all="ignore"):
        edges = np.linspace(f64(lo), f64(hi), 65) if np.isfinite(hi - lo) else np.array([lo, 0.0, hi])
        x = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf),
                            lo + (hi / 2 - lo / 2) * rng.random(1000) * 2, [np.nan]])
    check_against_numpy(x[np.isfinite(x) | np.isnan(x)], lo, hi, 64)


def test_huge_magnitudes_and_infinities():
    x = np.array([1e308, -1e308, 1.7e308, -1.7e308, 5e-324, -5e-324, 0.0, -0.0, np.inf, -np.inf, 1e-300])
    r = check_against_numpy(np.tile(x, 50), -2e308 / 2, 1e308, 16)
    assert r["min"][0] == -np.inf and r["max"][0] == np.inf and r["count"][0] == 550
    check_against_numpy(np.tile(x, 50), -1e-299, 1e-299, 5)


@pytest.mark.parametrize("bins,c", [(1, 4), (2, 3), (1000, 4), (5000, 1), (3000, 8)])
def test_few_and_many_bins(bins, c):
    """Many bins (one histogram copy instead of four) and a single bin."""
    rng = np.random.default_rng(bins)
    x = rng.normal(0, 1.5, (6001, c))
    x[::11, 0] = np.linspace(-3, 3, bins + 1)[rng.integers(0, bins + 1, x[::11, 0].size)]
    check_against_numpy(x, -3, 3, bins)


# ---- shapes, dtypes, NaNs ---------------------------------------------------------------------

@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 8, 17])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 9, 15, 17, 1023, 1024, 1025, 2049 + 3])
def test_every_shape_matches_numpy(n, c):
    rng = np.random.default_rng(n * 100 + c)
    x = rng.normal(0.5, 2.0, (n, c))
    x[rng.random(x.shape) < 0.05] = np.nan
    lo, hi = rng.uniform(-4, 0, c), rng.uniform(1, 5, c)
    check_against_numpy(x, lo, hi, 13)
    mn, mx = kernels.finite_range(x)
    expect_mn = np.array([np.min(col[~np.isnan(col)], initial=np.inf) for col in x.T])
    expect_mx = np.array([np.max(col[~np.isnan(col)], initial=-np.inf) for col in x.T])
    np.testing.assert_array_equal(mn, expect_mn)
    np.testing.assert_array_equal(mx, expect_mx)


def test_all_nan_columns_and_all_outside_columns():
    x = np.random.default_rng(3).normal(size=(3001, 4))
    x[:, 1] = np.nan
    x[:, 3] = 100.0
    r = check_against_numpy(x, -3, 3, 10)
    assert r["count"][1] == 0 and r["nan_count"][1] == 3001 and not r["hist"][1].any()
    assert r["hist"][3].sum() == 0 and r["count"][3] == 3001 and r["m2"][3] == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8])
@pytest.mark.parametrize("c", [1, 3, 4])
def test_other_dtypes_are_binned_as_float64(dtype, c):
    rng = np.random.default_rng(4)
    if np.dtype(dtype).kind == "f":
        x = rng.normal(0, 3, (2500, c)).astype(dtype)
        x[::37] = np.nan
        x[5] = np.linspace(-4, 4, 9)[:c].astype(dtype)       # on edges
    else:
        info = np.iinfo(dtype)
        x = rng.integers(max(info.min, -60), min(info.max, 60), (2500, c)).astype(dtype)
    check_against_numpy(x, -4, 4, 8)
    check_against_numpy(x, -40, 50, 9)
    mn, mx = kernels.finite_range(x)
    xf = x.astype(np.float64)
    np.testing.assert_array_equal(mn, np.nanmin(xf, 0))
    np.testing.assert_array_equal(mx, np.nanmax(xf, 0))


def test_non_contiguous_input():
    base = np.random.default_rng(5).normal(size=(4000, 6))
    for x in (base[:, ::2], base[::3, 1:5]):
        lo, hi = np.full(x.shape[1], -2.0), np.full(x.shape[1], 2.0)
        r = kernels.column_stats(x, lo, hi, 11)
        expect = kernels.column_stats(np.ascontiguousarray(x), lo, hi, 11)
        for a, b in zip(r, expect):
            assert a.tobytes() == b.tobytes()
        np.testing.assert_array_equal(kernels.finite_range(x)[0], x.min(0))


# ---- mean and variance ------------------------------------------------------------------------

def test_variance_matches_numpy_on_well_conditioned_data():
    rng = np.random.default_rng(6)
    x = rng.normal(3.0, 2.0, (200_003, 4))
    r, _, _ = kernel(x, -5, 5, 64)
    np.testing.assert_allclose(r["m2"] / r["count"], x.var(0), rtol=1e-12)
    np.testing.assert_allclose(r["mean"], x.mean(0), rtol=1e-13)


def test_variance_survives_a_large_offset():
    z = np.random.default_rng(7).normal(size=100_000)
    x = 1e9 + z
    r, _, _ = kernel(x, 1e9 - 5, 1e9 + 5, 64)
    # the data's own rounding (ulp(1e9) = 1.2e-7) bounds what any method can do
    assert r["m2"][0] / r["count"][0] == pytest.approx(np.var(x), rel=1e-9)
    assert r["mean"][0] == pytest.approx(np.mean(x), rel=1e-15)
    np.testing.assert_array_equal(r["hist"][0], np.histogram(x, 64, range=(f64(1e9 - 5), f64(1e9 + 5)))[0])


# ---- the order of operations is the source's --------------------------------------------------

def model(x, bins):
    """sum, mean and M2 computed in plain Python/numpy in exactly the order the kernel documents.

    Every numpy operation used here is element-wise (one IEEE operation per element), so the
    result depends on the algorithm only."""
    n, c = x.shape
    cw = c if LANES % c == 0 else 1
    total, mean, m2, count = np.zeros(c), np.zeros(c), np.zeros(c), np.zeros(c, np.int64)

    def fold(lanes, q):
        t = list(lanes[q::cw])
        while len(t) > 1:
            t = [t[2 * r] + t[2 * r + 1] for r in range(len(t) // 2)]
        return t[0]

    for b0 in range(0, n, BLOCK):
        rows = min(BLOCK, n - b0)
        for j0 in range(0, c, cw):
            a = np.ascontiguousarray(x[b0:b0 + rows, j0:j0 + cw]).reshape(-1).astype(np.float64)
            m8 = a.size // LANES * LANES
            vec = a[:m8].reshape(-1, LANES)
            s = np.zeros(LANES)
            for row in vec:
                s = s + np.where(row == row, row, 0.0)
            for q in range(cw):
                j = j0 + q
                mine = a[q::cw]
                k = np.count_nonzero(~np.isnan(mine))
                mytail = [u for u in range(m8, a.size) if u % cw == q]
                ts = 0.0
                for u in mytail:
                    ts = ts + a[u] if a[u] == a[u] else ts
                bsum = fold(s, q) + ts
                total[j] = total[j] + bsum
                if k == 0:
                    continue
                bmean = bsum / k
                qv = np.zeros(LANES)
                for row in vec:
                    d = row - np.array([bmean if (lane % cw) == q else 0.0 for lane in range(LANES)])
                    qv = qv + np.where(row == row, d * d, 0.0)
                tm2 = 0.0
                for u in mytail:
                    if a[u] == a[u]:
                        d = a[u] - bmean
                        tm2 = tm2 + d * d
                bm2 = fold(qv, q) + tm2
                na = count[j]
                nt = na + k
                share = k / nt
                delta = bmean - mean[j]
                mean[j] = mean[j] + delta * share
                m2[j] = m2[j] + (bm2 + delta * delta * (na * share))
                count[j] = nt
    return total, mean, m2


@pytest.mark.parametrize("shape", [(2500, 1), (1500, 4), (777, 3), (1030, 8), (13, 2)])
def test_sum_mean_m2_are_bit_identical_to_the_documented_order(shape):
    rng = np.random.default_rng(8)
    x = rng.normal(1.0, 3.0, shape) * 10.0 ** rng.integers(-3, 4, shape)
    x[rng.random(shape) < 0.03] = np.nan
    r, _, _ = kernel(x, -10, 10, 9)
    total, mean, m2 = model(x, 9)
    assert r["sum"].tobytes() == total.tobytes()
    assert r["mean"].tobytes() == mean.tobytes()
    assert r["m2"].tobytes() == m2.tobytes()


SAME_BITS_SCRIPT = r"""
import numpy as np
from hpcdist import kernels as k
rng = np.random.default_rng(9)
out = []
for c in (1, 3, 4):
    x = rng.normal(0.0, 2.0, (5001, c)) * 10.0 ** rng.integers(-4, 5, (5001, c))
    x[rng.random(x.shape) < 0.02] = np.nan
    out += [a.tobytes().hex() for a in k.column_stats(x, np.full(c, -3.0), np.full(c, 4.0), 64)]
    out += [a.tobytes().hex() for a in k.finite_range(x)]
print("\n".join(out))
"""


@pytest.mark.skipif(os.environ.get("HPCDIST_SKIP_CPU_CHECK") == "1", reason="asked to skip")
def test_same_bits_when_compiled_for_a_cpu_without_avx512():
    """The host build (AVX-512 here) and a build for plain x86-64 (SSE2, 2 doubles per register)
    give the same bits: nothing depends on the vector width."""
    import platform
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("x86-64 only")
    script = SAME_BITS_SCRIPT
    outs = []
    for cpu in ("host", "x86-64"):
        env = dict(os.environ)
        if cpu != "host":
            env["NUMBA_CPU_NAME"] = cpu
            env["NUMBA_CPU_FEATURES"] = ""
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout)
    assert outs[0] == outs[1]


# ---- the public edge --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float16, np.bool_, np.int8, np.uint16, np.int32, np.uint32, np.uint64,
                                   ">f8", ">f4", ">i4", "<f8"])
def test_every_real_dtype_in_any_byte_order_is_binned_as_float64(dtype):
    rng = np.random.default_rng(10)
    x = rng.normal(0, 3, (2100, 3))
    if np.dtype(dtype).kind in "iub":
        x = np.abs(x) if np.dtype(dtype).kind in "ub" else x
        x = np.round(x) if np.dtype(dtype).kind != "b" else x > 2
    x = x.astype(dtype)
    if np.dtype(dtype).kind == "f":
        x[::29] = np.nan
    check_against_numpy(x, -4, 4, 8)
    native = x.astype(x.dtype.newbyteorder("=")) if x.dtype.kind != "b" else x
    for a, b in zip(kernels.column_stats(x, -4, 4, 8), kernels.column_stats(native, -4, 4, 8)):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("c", [1, 3, 4])
def test_float32_gives_the_statistics_of_its_exact_float64_values(c):
    """Widening float32 to float64 is exact and the operations are the same: the same bits."""
    rng = np.random.default_rng(11)
    x = (rng.normal(1.0, 3.0, (3001, c)) * 10.0 ** rng.integers(-3, 4, (3001, c))).astype(np.float32)
    x[rng.random(x.shape) < 0.02] = np.nan
    wide = x.astype(np.float64)
    for a, b in zip(kernels.column_stats(x, -10, 10, 16), kernels.column_stats(wide, -10, 10, 16)):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    for a, b in zip(kernels.finite_range(x), kernels.finite_range(wide)):
        assert a.tobytes() == b.tobytes()
    check_against_numpy(x, -10, 10, 16)


def test_a_1d_array_is_one_column():
    x = np.random.default_rng(12).normal(size=999)
    one = kernels.column_stats(x, -1, 1, 5)
    assert one.hist.shape == (1, 5) and one.count.tolist() == [999]
    for a, b in zip(one, kernels.column_stats(x.reshape(-1, 1), [-1.0], [1.0], 5)):
        assert a.tobytes() == b.tobytes()
    assert kernels.finite_range(x).min[0] == x.min()


@pytest.mark.parametrize("args,error,message", [
    ((np.zeros(4, np.complex128), 0, 1, 4), TypeError, "got complex128"),
    ((np.zeros(4, "U3"), 0, 1, 4), TypeError, "got <U3"),
    ((np.zeros((2, 2, 2)), 0, 1, 4), ValueError, "1-D or 2-D array, got shape (2, 2, 2)"),
    ((np.zeros((5, 3)), [0, 1], 2, 4), ValueError, "lo must be one value or 3 values"),
    ((np.zeros((5, 3)), 0, np.ones((3, 1)), 4), ValueError, "hi must be one value or 3 values"),
    ((np.zeros(5), 2, 1, 4), ValueError, "lo <= hi"),
    ((np.zeros(5), np.nan, 1, 4), ValueError, "lo <= hi"),
    ((np.zeros(5), 0, np.nan, 4), ValueError, "lo <= hi"),
    ((np.zeros(5), 0, 1, 0), ValueError, "bins must be an integer from 1 to 2147483647, got 0"),
    ((np.zeros(5), 0, 1, 2**31), ValueError, "got 2147483648"),
    ((np.zeros(5), 0, 1, 2.5), ValueError, "got 2.5"),
    ((np.zeros(5), 0, 1, True), ValueError, "got True"),
])
def test_the_public_edge_refuses_what_the_kernels_cannot_do(args, error, message):
    with pytest.raises(error) as info:
        kernels.column_stats(*args)
    assert message in str(info.value)


def test_long_double_is_refused_not_rounded():
    if np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(TypeError, match="at most 64-bit"):
        kernels.finite_range(np.zeros(3, np.longdouble))


def test_the_kernels_run_without_mpi4py():
    """hpcdist.kernels sits below the runtime: a process without MPI can use it."""
    script = ("import sys, numpy as np; sys.modules['mpi4py'] = None\n"
              "from hpcdist import kernels\n"
              "print(kernels.column_stats(np.arange(10.0), 0, 9, 3).hist.tolist())")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[[3, 3, 4]]"
