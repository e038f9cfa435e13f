"""jobs/groupby.py through the real CLI: numpy's answers, the same bits at any rank count and
schedule, bounded shuffle rounds, odd inputs, and bad keys refused in one line."""

import h5py
import numpy as np
import pytest

from conftest import JOBS, assert_same_bits, hpcdist, read_h5, run_ok
from hpcdist.output import read_result

GROUPBY = str(JOBS / "groupby.py")


def expected(data, key=0):
    """numpy's group-by: np.unique for the keys, then each group's non-NaN values."""
    keys, inverse = np.unique(data[:, key].astype(np.int64), return_inverse=True)
    values = np.delete(data, key, axis=1)
    ok = ~np.isnan(values)
    count = np.stack([np.bincount(inverse, ok[:, j], len(keys)) for j in range(values.shape[1])], 1)
    total = np.stack([np.bincount(inverse, np.where(ok[:, j], values[:, j], 0), len(keys))
                      for j in range(values.shape[1])], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        dev = np.where(ok, values - mean[inverse], 0.0)
        var = np.stack([np.bincount(inverse, dev[:, j] ** 2, len(keys)) for j in range(values.shape[1])], 1) / count
    lo, hi = np.full(count.shape, np.inf), np.full(count.shape, -np.inf)
    np.minimum.at(lo, inverse, np.where(ok, values, np.inf))
    np.maximum.at(hi, inverse, np.where(ok, values, -np.inf))
    none = count == 0
    lo[none], hi[none] = np.nan, np.nan
    return {"keys": keys, "count": count.astype(np.int64), "sum": total, "mean": mean, "var": var,
            "min": lo, "max": hi}


def assert_matches_numpy(got, data, key=0):
    want = expected(data, key)
    assert list(got) == ["keys", "count", "sum", "mean", "var", "min", "max"]
    for name in ("keys", "count", "min", "max"):
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert got["keys"].dtype == np.int64 and got["count"].dtype == np.int64
    for name in ("sum", "mean", "var"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    """20,000 rows: key column 1 (floats holding integers), 2 value columns with NaNs, a key found
    in one shard only, a group whose second column is all NaN."""
    rng = np.random.default_rng(7)
    rows = 20_000
    data = rng.normal(5.0, 3.0, size=(rows, 3))
    data[:, 1] = rng.integers(-300, 300, rows)
    data[rng.random((rows, 3)) < 0.05] = np.nan
    data[:, 1] = np.where(np.isnan(data[:, 1]), 0, data[:, 1])
    data[12_345, 1] = 10**9                     # one row, so one shard only
    data[data[:, 1] == 17, 2] = np.nan          # group 17: column 2 all NaN
    path = tmp_path_factory.mktemp("groupby") / "events.h5"
    with h5py.File(path, "w") as f:
        f["e"] = data
    return path, data


def run_groupby(path, out, *extra, ranks=None, dataset="/e", key=1):
    run_ok("run", GROUPBY, "--input", f"{path}:{dataset}", "--param", f"key={key}", "--output", str(out),
           "--shard-rows", "1500", *extra, ranks=ranks)
    return read_h5(out)


def test_matches_numpy_and_the_same_bits_at_1_2_3_4_and_7_ranks_static_and_dynamic(events, tmp_path):
    path, data = events
    first = run_groupby(path, tmp_path / "1.h5", ranks=1)
    assert_matches_numpy(first, data, key=1)
    i = first["keys"].tolist().index(17)
    assert first["count"][i, 1] == 0 and np.isnan(first["mean"][i, 1]) and np.isnan(first["var"][i, 1])
    assert np.isnan(first["min"][i, 1]) and np.isnan(first["max"][i, 1]) and first["sum"][i, 1] == 0
    for ranks, schedule in [(2, "static"), (3, "static"), (7, "static"), (3, "dynamic"), (4, "dynamic")]:
        got = run_groupby(path, tmp_path / f"{ranks}{schedule}.h5", "--schedule", schedule, ranks=ranks)
        assert_same_bits(first, got)


def test_small_shuffle_rounds_give_the_same_bits(events, tmp_path, monkeypatch):
    path, _ = events
    first = run_groupby(path, tmp_path / "1.h5", ranks=1)
    monkeypatch.setenv("HPCDIST_SHUFFLE_ROUND_BYTES", "999")
    got = run_groupby(path, tmp_path / "3.h5", ranks=3)
    assert_same_bits(first, got)
    attrs = read_result(str(tmp_path / "3.h5"))[1]
    assert attrs["shuffle_round_bytes"] == 999 and attrs["shuffle_rounds"] > 100
    assert attrs["keys"] == len(first["keys"]) and attrs["job"] == "groupby"


def test_a_million_distinct_keys(tmp_path):
    rng = np.random.default_rng(1)
    rows = 1_000_000
    data = np.column_stack([rng.permutation(rows) * 3 - 10**6, rng.random(rows)]).astype(np.float32)
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f["e"] = data
    run_ok("run", GROUPBY, "--input", f"{path}:/e", "--output", str(tmp_path / "o.h5"),
           "--shard-rows", "250000", ranks=2)
    got = read_h5(tmp_path / "o.h5")
    order = np.argsort(data[:, 0].astype(np.int64))
    np.testing.assert_array_equal(got["keys"], data[order, 0].astype(np.int64))
    assert got["count"].shape == (rows, 1) and np.all(got["count"] == 1)
    np.testing.assert_array_equal(got["sum"][:, 0], data[order, 1].astype(np.float64))
    assert np.all(got["var"] == 0)


@pytest.mark.parametrize("ranks", [1, 3])
def test_one_key_for_every_row_and_a_single_row(tmp_path, ranks):
    data = np.column_stack([np.full(5000, 42.0), np.arange(5000.0), -np.arange(5000.0)])
    tiny = np.array([[-7.0, 1.5]])
    for name, arr in (("one_key", data), ("one_row", tiny)):
        path = tmp_path / f"{name}.h5"
        with h5py.File(path, "w") as f:
            f["e"] = arr
        got = run_groupby(path, tmp_path / f"{name}_out.h5", ranks=ranks, key=0)
        assert_matches_numpy(got, arr, key=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 2.5])
def test_a_bad_key_on_any_rank_is_one_line_and_exit_2(events, tmp_path, bad):
    _, data = events
    data = data.copy()
    data[19_000, 1] = bad                       # the last shard: mapped by the last rank
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f["e"] = data
    out = tmp_path / "o.h5"
    proc = hpcdist("run", GROUPBY, "--input", f"{path}:/e", "--param", "key=1", "--output", str(out),
                   "--shard-rows", "1500", ranks=3)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"hpcdist: error: column 1 (param key) must hold integer values: row 19000 has {bad!r}"]
    assert not out.exists() and not list(tmp_path.glob(".o.h5*"))


def test_a_key_column_that_is_not_there_is_refused(events, tmp_path):
    path, _ = events
    proc = hpcdist("run", GROUPBY, "--input", f"{path}:/e", "--param", "key=3", ranks=2)
    assert proc.returncode == 2 and proc.stderr.strip() == "hpcdist: error: param key must be a column index in [0, 3), got 3"


def test_an_empty_dataset_is_refused_in_one_line(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f["e"] = np.zeros((0, 3))
    proc = hpcdist("run", GROUPBY, "--input", f"{path}:/e", "--output", str(tmp_path / "o.h5"))
    assert proc.returncode == 2 and proc.stderr.strip() == f"hpcdist: error: {path}:/e: is empty (shape (0, 3))"
    assert not (tmp_path / "o.h5").exists()
