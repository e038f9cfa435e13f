"""Data sources: every layout reads exactly what h5py/numpy would, through its fastest path."""

import h5py
import numpy as np
import pytest

from hpcdist import UserError
from hpcdist.sources import open_source
from hpcdist.sources.synthetic import BLOCK_ROWS, SyntheticSource

RANGES = [(0, 1), (0, 700), (13, 512), (499, 1001), (1500, 2000), (1999, 2000), (0, 2000)]


def _check_reads(spec, expected):
    with open_source(spec) as src:
        assert src.rows == len(expected) and src.dtype == expected.dtype
        buf = src.empty(len(expected))
        for start, stop in RANGES:
            got = src.read(start, stop, buf)
            assert got.shape == expected[start:stop].shape
            assert got.tobytes() == expected[start:stop].tobytes(), (spec, start, stop)


@pytest.mark.parametrize("layout", [
    dict(),                                            # contiguous: one pread at the data offset
    dict(chunks=(250, 3)),                             # raw chunks: pread per chunk
    dict(chunks=(128, 3), compression="gzip"),         # filtered: HDF5 decodes
    dict(chunks=(100, 1)),                             # partial-width chunks: HDF5 gathers
    dict(dtype=">f8"),                                 # big-endian: HDF5 converts
])
def test_hdf5_reads_match_h5py(tmp_path, layout):
    data = np.random.default_rng(1).normal(size=(2000, 3))
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=data.astype(layout.pop("dtype", "<f8")), **layout)
    _check_reads(f"{path}:/x", data)


def test_hdf5_unwritten_chunks_read_as_the_fill_value(tmp_path):
    path = tmp_path / "sparse.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("x", shape=(2000,), dtype="f4", chunks=(300,), fillvalue=-1.0)
        ds[600:900] = 5.0
    expected = np.full(2000, -1.0, dtype="f4")
    expected[600:900] = 5.0
    _check_reads(f"{path}:/x", expected)


@pytest.mark.parametrize("order", ["C", "F"])
def test_npy_reads_match_numpy(tmp_path, order):
    data = np.asarray(np.random.default_rng(2).integers(0, 1000, size=(2000, 4)), order=order)
    path = tmp_path / "d.npy"
    np.save(path, data)
    _check_reads(str(path), np.ascontiguousarray(data))


def test_synthetic_rows_do_not_depend_on_how_they_are_split():
    src = SyntheticSource(rows=3 * BLOCK_ROWS + 17, cols=2, seed=5, nan=0.1)
    whole = src.read(0, src.rows, src.empty(src.rows)).copy()
    for cuts in ([100, 5000, 9000], [BLOCK_ROWS, 2 * BLOCK_ROWS], [1, 2, 3, 12000]):
        parts, buf = [], src.empty(src.rows)
        for a, b in zip([0, *cuts], [*cuts, src.rows]):
            parts.append(src.read(a, b, buf).copy())
        assert np.concatenate(parts).tobytes() == whole.tobytes()
    idx = np.array([0, 5, 4095, 4096, 12000])
    assert src.take(idx).tobytes() == whole[idx].tobytes()
    assert np.isnan(whole).mean() == pytest.approx(0.1, abs=0.01)


def test_different_seeds_give_different_data():
    a, b = SyntheticSource(rows=100, seed=1), SyntheticSource(rows=100, seed=2)
    assert not np.array_equal(a.read(0, 100, a.empty(100)), b.read(0, 100, b.empty(100)))


@pytest.mark.parametrize("spec,message", [
    ("synthetic:cols=3", "needs rows=N"),
    ("synthetic:rows=10,colz=3", "bad item 'colz=3'"),
    ("synthetic:rows=10,dist=cauchy", "dist must be one of"),
    ("range:ten", "expected range:N"),
    ("data.h5", "expected FILE.h5:/path/to/dataset"),
])
def test_malformed_specs_say_what_was_expected(spec, message):
    with pytest.raises(UserError, match=message):
        open_source(spec)
