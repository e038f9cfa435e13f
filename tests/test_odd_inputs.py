"""Odd but valid inputs are read exactly as h5py/numpy read them, or refused in one line.

Every layout below gives the stats job the bits of a plain, native, contiguous copy of the same
(converted) values, at 1 and 2 ranks, and the output says what was stored and how it was converted.
A dtype with no exact kernel type, and a chunk that fails to decode, are one line and exit 2.
The tests write every odd file themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest

from conftest import JOBS, assert_same_bits, hpcdist, read_h5, run_ok
from hpcdist import UserError
from hpcdist.output import read_result
from hpcdist.sources import open_source
from hpcdist.sources.hdf5_layout import RawRows

STATS = str(JOBS / "stats.py")
ROWS, COLS = 3000, 2
SHARD_ROWS = "500"       # 6 shards: both ranks read at 2 ranks
CORRUPT_ROWS = (2500, 2600)   # the chunk damaged in the corruption tests: read by the last rank


@dataclass
class Case:
    """An odd input: its spec, the values a kernel must see, and what the source says about it."""

    spec: str
    values: np.ndarray                  # converted values, native order, C layout
    stored: str                         # expected stored_dtype attribute
    read_path: str | None = None        # HDF5: which read path the source must choose
    files: list[Path] = field(default_factory=list)   # every real file read


def floats(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.normal(3.0, 2.0, size=(ROWS, COLS))
    data[rng.random(data.shape) < 0.01] = np.nan
    return data


def h5(path: Path, name: str = "x", data: np.ndarray | None = None, **kw) -> Path:
    with h5py.File(path, "a") as f:
        f.create_dataset(name, data=floats() if data is None else data, **kw)
    return path


def plain_h5(d: Path, data: np.ndarray, read_path: str = "pread contiguous", **kw) -> Case:
    path = h5(d / "d.h5", data=data, **kw)
    stored = data.dtype.str
    values = np.ascontiguousarray(data.astype(data.dtype.newbyteorder("=")))
    return Case(f"{path}:/x", values, stored, read_path, [path])


def npy(d: Path, data: np.ndarray, values: np.ndarray | None = None) -> Case:
    path = d / "d.npy"
    np.save(path, data)
    expected = np.ascontiguousarray(data if values is None else values)
    return Case(str(path), expected.astype(expected.dtype.newbyteorder("=")), data.dtype.str, None, [path])


def external_link(d: Path) -> Case:
    """The bug users found: offsets of b.h5:/x pread from a.h5, whose decoy sits at the same offsets."""
    h5(d / "a.h5", data=floats(seed=99), chunks=(100, COLS))
    h5(d / "b.h5", chunks=(100, COLS))
    with h5py.File(d / "a.h5", "a") as f:
        f["ext"] = h5py.ExternalLink(str(d / "b.h5"), "/x")
    return Case(f"{d / 'a.h5'}:/ext", floats(), "<f8", "pread chunks", [d / "a.h5", d / "b.h5"])


def external_link_to_group(d: Path) -> Case:
    with h5py.File(d / "b.h5", "w") as f:
        f.create_dataset("grp/x", data=floats())
    with h5py.File(d / "a.h5", "w") as f:
        f.create_dataset("grp/x", data=floats(seed=99))
        f["lnk"] = h5py.ExternalLink("b.h5", "/grp")     # relative: HDF5 looks beside a.h5
    return Case(f"{d / 'a.h5'}:/lnk/x", floats(), "<f8", "pread contiguous", [d / "a.h5", d / "b.h5"])


def soft_link(d: Path) -> Case:
    h5(d / "d.h5", name="real/x", chunks=(100, COLS))
    with h5py.File(d / "d.h5", "a") as f:
        f["soft"] = h5py.SoftLink("/real/x")
    return Case(f"{d / 'd.h5'}:/soft", floats(), "<f8", "pread chunks", [d / "d.h5"])


def hard_link(d: Path) -> Case:
    h5(d / "d.h5", data=floats(seed=99), name="decoy")
    h5(d / "d.h5", name="real")
    with h5py.File(d / "d.h5", "a") as f:
        f["also"] = f["real"]
    return Case(f"{d / 'd.h5'}:/also", floats(), "<f8", "pread contiguous", [d / "d.h5"])


def external_storage(d: Path) -> Case:
    data = floats()
    half = data[: ROWS // 2].tobytes()
    (d / "raw1.bin").write_bytes(b"\0" * 64 + half)          # at an offset inside the first file
    (d / "raw2.bin").write_bytes(data[ROWS // 2 :].tobytes())
    with h5py.File(d / "d.h5", "w") as f:
        f.create_dataset("x", shape=data.shape, dtype="<f8",
                         external=[(str(d / "raw1.bin"), 64, len(half)),
                                   (str(d / "raw2.bin"), 0, h5py.h5f.UNLIMITED)])
    return Case(f"{d / 'd.h5'}:/x", data, "<f8", "h5py", [d / "d.h5", d / "raw1.bin", d / "raw2.bin"])


def virtual_two_files(d: Path) -> Case:
    data = floats()
    h5(d / "s1.h5", data=data[:1200])
    h5(d / "s2.h5", data=data[1200:])
    layout = h5py.VirtualLayout(shape=data.shape, dtype="<f8")
    layout[:1200] = h5py.VirtualSource("s1.h5", "x", shape=(1200, COLS))   # relative: beside the VDS
    layout[1200:] = h5py.VirtualSource("s2.h5", "x", shape=(ROWS - 1200, COLS))
    with h5py.File(d / "v.h5", "w") as f:
        f.create_virtual_dataset("x", layout, fillvalue=-1.0)
    return Case(f"{d / 'v.h5'}:/x", data, "<f8", "h5py", [d / "v.h5", d / "s1.h5", d / "s2.h5"])


def userblock(chunks: tuple | None) -> Callable[[Path], Case]:
    def build(d: Path) -> Case:
        with h5py.File(d / "d.h5", "w", userblock_size=512) as f:
            f.create_dataset("x", data=floats(), chunks=chunks)
        with open(d / "d.h5", "r+b") as f:
            f.write(b"user block: not HDF5 data" * 20)
        kind = "pread chunks" if chunks else "pread contiguous"
        return Case(f"{d / 'd.h5'}:/x", floats(), "<f8", kind, [d / "d.h5"])
    return build


def never_written_chunks(d: Path) -> Case:
    values = np.full((ROWS, COLS), 7.5)
    values[600:900] = floats()[600:900]
    values[2000:2050] = floats()[2000:2050]
    with h5py.File(d / "d.h5", "w") as f:
        ds = f.create_dataset("x", shape=(ROWS, COLS), dtype="<f8", chunks=(100, COLS), fillvalue=7.5)
        ds[600:900] = values[600:900]
        ds[2000:2050] = values[2000:2050]    # half a chunk: HDF5 writes the rest as fill
    return Case(f"{d / 'd.h5'}:/x", values, "<f8", "pread chunks", [d / "d.h5"])


def nothing_written(chunks: tuple | None) -> Callable[[Path], Case]:
    """A dataset created with a fill value and never written: no storage, h5py gives the fill."""
    def build(d: Path) -> Case:
        with h5py.File(d / "d.h5", "w") as f:
            f.create_dataset("x", shape=(ROWS, COLS), dtype="<f4", chunks=chunks, fillvalue=-2.5)
        return Case(f"{d / 'd.h5'}:/x", np.full((ROWS, COLS), -2.5, "<f4"), "<f4", "h5py", [d / "d.h5"])
    return build


def narrow_ints(d: Path) -> Case:
    """A file type numpy has no twin for (24 significant bits in 4 bytes): h5py converts it."""
    values = ints("<i4", -(2**20), 2**20)
    ftype = h5py.h5t.STD_I32LE.copy()
    ftype.set_precision(24)
    with h5py.File(d / "d.h5", "w") as f:
        h5py.h5d.create(f.id, b"x", ftype, h5py.h5s.create_simple(values.shape))
        f["x"][...] = values
    return Case(f"{d / 'd.h5'}:/x", values, "<i4", "h5py", [d / "d.h5"])


def compact(d: Path) -> Case:
    data = floats()[:1000]                      # compact data must fit in 64 KiB
    with h5py.File(d / "d.h5", "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create_simple(data.shape)
        h5py.h5d.create(f.id, b"x", h5py.h5t.IEEE_F64LE, space, dcpl=dcpl)
        f["x"][...] = data
    return Case(f"{d / 'd.h5'}:/x", data, "<f8", "h5py", [d / "d.h5"])


def ints(dtype: str, lo: int, hi: int) -> np.ndarray:
    return np.random.default_rng(3).integers(lo, hi, size=(ROWS, COLS)).astype(dtype)


def bools() -> np.ndarray:
    return np.random.default_rng(4).random((ROWS, COLS)) < 0.3


LAYOUTS: dict[str, Callable[[Path], Case]] = {
    "contiguous": lambda d: plain_h5(d, floats()),
    "chunked": lambda d: plain_h5(d, floats(), "pread chunks", chunks=(100, COLS)),
    "chunks split rows": lambda d: plain_h5(d, floats(), "h5py", chunks=(100, 1)),
    "external link": external_link,
    "external link to a group": external_link_to_group,
    "soft link": soft_link,
    "hard link": hard_link,
    "external raw storage": external_storage,
    "virtual dataset over two files": virtual_two_files,
    "userblock, contiguous": userblock(None),
    "userblock, chunked": userblock((100, COLS)),
    "chunked + gzip": lambda d: plain_h5(d, floats(), "h5py", chunks=(100, COLS), compression="gzip"),
    "chunked + shuffle": lambda d: plain_h5(d, floats(), "h5py", chunks=(100, COLS), shuffle=True),
    "chunks never written (fill value)": never_written_chunks,
    "compact": compact,
    "int32 with 24 significant bits": narrow_ints,
    "contiguous, never written (fill value)": nothing_written(None),
    "chunked, no chunk written (fill value)": nothing_written((100, COLS)),
    "big-endian HDF5": lambda d: plain_h5(d, floats().astype(">f8")),
    "big-endian HDF5, chunked + gzip": lambda d: plain_h5(d, floats().astype(">f4"), "h5py",
                                                          chunks=(100, COLS), compression="gzip"),
    "big-endian .npy": lambda d: npy(d, floats().astype(">f8")),
    "Fortran-order .npy": lambda d: npy(d, np.asfortranarray(floats())),
    "float16 HDF5": lambda d: Case(*_widened(plain_h5(d, floats().astype("<f2")))),
    "big-endian float16 HDF5, chunked": lambda d: Case(*_widened(plain_h5(d, floats().astype(">f2"),
                                                                           "pread chunks", chunks=(100, COLS)))),
    "float16 .npy": lambda d: npy(d, floats().astype("<f2"), floats().astype("<f2").astype("<f4")),
    "big-endian float16 .npy": lambda d: npy(d, floats().astype(">f2"), floats().astype("<f2").astype("<f4")),
    "bool HDF5": lambda d: Case(*_as_uint8(plain_h5(d, bools()))),
    "bool .npy": lambda d: npy(d, bools(), bools().astype(np.uint8)),
    "int8 HDF5": lambda d: plain_h5(d, ints("i1", -100, 100)),
    "uint16 big-endian HDF5": lambda d: plain_h5(d, ints(">u2", 0, 60000)),
    "uint16 .npy": lambda d: npy(d, ints("<u2", 0, 60000)),
}
# Layouts the CLI runs at 1 and 2 ranks (the rest are variations the unit tests read against h5py).
CLI_LAYOUTS = [name for name in LAYOUTS if name not in (
    "chunked", "chunks split rows", "external link to a group", "contiguous, never written (fill value)",
    "chunked, no chunk written (fill value)", "int32 with 24 significant bits", "big-endian HDF5, chunked + gzip",
    "big-endian float16 HDF5, chunked", "big-endian float16 .npy")]


def _widened(case: Case) -> tuple:
    return case.spec, case.values.astype("<f4"), case.stored, case.read_path, case.files


def _as_uint8(case: Case) -> tuple:
    return case.spec, case.values.astype(np.uint8), case.stored, case.read_path, case.files


# ---------------------------------------------------------------- reads, against h5py and numpy

RANGES = [(0, 1), (0, 700), (13, 512), (99, 101), (499, 1001), (1999, 2000), (2950, 3000)]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_reads_give_exactly_the_stored_values_converted(layout, tmp_path):
    case = LAYOUTS[layout](tmp_path)
    rows = len(case.values)
    with open_source(case.spec) as src:
        assert src.dtype == case.values.dtype and src.dtype.isnative
        assert src.stored_dtype.str == case.stored
        assert (src.conversion == "") == (case.stored == case.values.dtype.str)
        buf = src.empty(rows)
        for start, stop in [(a, min(b, rows)) for a, b in RANGES if a < rows] + [(0, rows)]:
            got = src.read(start, stop, buf)
            assert got.tobytes() == case.values[start:stop].tobytes(), (start, stop)
        idx = np.array([0, 5, 101, rows - 1])
        assert src.take(idx).tobytes() == case.values[idx].tobytes()


@pytest.mark.parametrize("layout", sorted(k for k in LAYOUTS if ".npy" not in k))
def test_pread_only_where_the_bytes_provably_live(layout, tmp_path):
    """Links into other files still get the fast path (from the right file); layouts whose bytes
    are not plain rows in that file are read by h5py."""
    case = LAYOUTS[layout](tmp_path)
    with open_source(case.spec) as src:
        assert src.read_path == case.read_path


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_files_lists_every_file_a_read_touches(layout, tmp_path):
    case = LAYOUTS[layout](tmp_path)
    with open_source(case.spec) as src:
        assert sorted(src.files()) == sorted(os.path.realpath(p) for p in case.files)


def test_generated_sources_read_no_file():
    for spec in ("synthetic:rows=10", "range:10"):
        with open_source(spec) as src:
            assert src.files() == []


def test_a_self_check_refuses_an_offset_that_reads_other_bytes(tmp_path):
    """The fast path verifies its first rows against h5py before it is used."""
    path = h5(tmp_path / "d.h5")
    with h5py.File(path, "r") as f:
        ds = f["x"]
        right = int(ds.id.get_offset())
        for offset, ok in ((right, True), (right + 16, False), (right - 512, False)):
            raw = RawRows(ds, os.open(path, os.O_RDONLY), offset, 1)
            try:
                assert raw.self_check() is ok, offset
            finally:
                raw.close()


# ---------------------------------------------------------------- the stats job, end to end

@pytest.fixture(scope="module")
def plain_result(tmp_path_factory) -> Callable[[np.ndarray], dict]:
    """The stats results of a plain native contiguous copy of ``values`` (one run per value set)."""
    done: dict[bytes, dict] = {}

    def result(values: np.ndarray) -> dict:
        key = values.dtype.str.encode() + values.tobytes()
        if key not in done:
            d = tmp_path_factory.mktemp("plain")
            with h5py.File(d / "plain.h5", "w") as f:
                f.create_dataset("x", data=values)
            run_ok("run", STATS, "--input", f"{d / 'plain.h5'}:/x", "--output", str(d / "out.h5"),
                   "--shard-rows", SHARD_ROWS)
            done[key] = read_h5(d / "out.h5")
        return done[key]

    return result


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("layout", CLI_LAYOUTS)
def test_odd_layouts_give_the_bits_of_a_plain_copy(layout, ranks, tmp_path, plain_result):
    case = LAYOUTS[layout](tmp_path)
    out = tmp_path / "out.h5"
    run_ok("run", STATS, "--input", case.spec, "--output", str(out), "--shard-rows", SHARD_ROWS, ranks=ranks)
    assert_same_bits(read_h5(out), plain_result(case.values))
    attrs = read_result(str(out))[1]                    # per-rank lists from /hpcdist/ranks
    assert attrs["stored_dtype"] == case.stored and attrs["dtype"] == case.values.dtype.str
    if case.stored == case.values.dtype.str:
        assert attrs["conversion"] == ""
    else:
        assert attrs["conversion"].startswith(f"{case.stored} -> {case.values.dtype.str}: ")
    assert all(n > 0 for n in attrs["rank_shards"]) and len(attrs["rank_shards"]) == ranks


# ---------------------------------------------------------------- refusals

def _refused_h5(dtype) -> Callable[[Path], str]:
    def build(d: Path) -> str:
        data = np.arange(40).reshape(20, 2).astype(dtype) if dtype is not None else None
        with h5py.File(d / "d.h5", "w") as f:
            if dtype is None:   # an enum: labels, not numbers
                f.create_dataset("x", data=np.ones(20, "i1"), dtype=h5py.enum_dtype({"RED": 1, "BLUE": 2}, "i1"))
            else:
                f.create_dataset("x", data=data)
        return f"{d / 'd.h5'}:/x"
    return build


def _refused_npy(data: np.ndarray) -> Callable[[Path], str]:
    def build(d: Path) -> str:
        np.save(d / "d.npy", data)
        return str(d / "d.npy")
    return build


def _strings(d: Path) -> str:
    with h5py.File(d / "d.h5", "w") as f:
        f.create_dataset("x", data=["a", "bc", "def"], dtype=h5py.string_dtype())
    return f"{d / 'd.h5'}:/x"


REFUSED = {
    "long double HDF5": (_refused_h5(np.longdouble),
                         "dtype float128 (long double) cannot be converted to float64 without loss; convert it first"),
    "long double .npy": (_refused_npy(np.arange(20, dtype=np.longdouble)),
                         "dtype float128 (long double) cannot be converted to float64 without loss"),
    "complex HDF5": (_refused_h5(np.complex128), "dtype complex128 is not supported: kernels take real numbers"),
    "complex .npy": (_refused_npy(np.ones(20, np.complex64)), "dtype complex64 is not supported: kernels take real"),
    "strings HDF5": (_strings, "(objects: variable-length strings or references) is not numeric"),
    "compound HDF5": (_refused_h5([("a", "<f8"), ("b", "<i4")]), "dtype compound {a, b} is not numeric"),
    "enum HDF5": (_refused_h5(None), "dtype enum (int8, labels RED, BLUE) is not numeric"),
    "dates .npy": (_refused_npy(np.arange(20).astype("datetime64[s]")), "(dates) is not numeric"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unconvertible_dtypes_are_refused_by_open(case, tmp_path):
    build, message = REFUSED[case]
    spec = build(tmp_path)
    with pytest.raises(UserError, match="^" + spec) as err:
        open_source(spec)
    assert message in str(err.value)


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("case", ["long double HDF5", "long double .npy", "complex HDF5", "strings HDF5"])
def test_unconvertible_dtypes_are_one_line_and_exit_2(case, ranks, tmp_path):
    build, message = REFUSED[case]
    spec = build(tmp_path)
    out = tmp_path / "out.h5"
    proc = hpcdist("run", STATS, "--input", spec, "--output", str(out), ranks=ranks, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hpcdist: error: {spec}: dtype ") and message in lines[0], \
        proc.stderr
    assert not out.exists()


def test_a_link_that_leads_nowhere_is_named(tmp_path):
    path = h5(tmp_path / "d.h5")
    with h5py.File(path, "a") as f:
        f["ext"] = h5py.ExternalLink("gone.h5", "/x")
        f["soft"] = h5py.SoftLink("/gone")
    with pytest.raises(UserError, match=r"d.h5:/ext: external link to gone.h5:/x leads nowhere"):
        open_source(f"{path}:/ext")
    with pytest.raises(UserError, match=r"d.h5:/soft: soft link to /gone leads nowhere"):
        open_source(f"{path}:/soft")


@pytest.mark.parametrize("name,message", [("d.h5", "cannot open HDF5 file (Unable to synchronously open file "
                                                     "(truncated file"),
                                          ("d.npy", "not a readable .npy file")])
def test_a_truncated_file_is_refused_in_one_line(name, message, tmp_path):
    path = tmp_path / name
    if name.endswith(".h5"):
        h5(path)
    else:
        np.save(path, floats())
    os.truncate(path, path.stat().st_size - 4000)
    spec = f"{path}:/x" if name.endswith(".h5") else str(path)
    with pytest.raises(UserError) as err:
        open_source(spec)
    assert str(err.value).startswith(f"{path}: {message}") and "\n" not in str(err.value)


# ---------------------------------------------------------------- chunks that fail to decode

def corrupted(d: Path, filters: dict) -> Path:
    """A chunked dataset whose chunk at CORRUPT_ROWS has garbage in the middle of its bytes."""
    path = h5(d / "bad.h5", chunks=(100, COLS), **filters)
    with h5py.File(path, "r") as f:
        ds = f["x"]
        info = ds.id.get_chunk_info_by_coord((CORRUPT_ROWS[0], 0))
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(os.urandom(8) + b"\xff" * 40)
    return path


FILTERS = {"gzip": dict(compression="gzip"), "fletcher32": dict(fletcher32=True)}


@pytest.mark.parametrize("kind", sorted(FILTERS))
def test_a_chunk_that_fails_to_decode_names_file_dataset_and_rows(kind, tmp_path):
    path = corrupted(tmp_path, FILTERS[kind])
    with open_source(f"{path}:/x") as src:
        src.read(0, 2000, src.empty(2000))            # the chunks before it read fine
        with pytest.raises(UserError) as err:
            src.read(2000, 3000, src.empty(1000))
    a, b = CORRUPT_ROWS
    assert str(err.value).startswith(f"{path}:/x: rows {a} to {b - 1} cannot be read: a chunk fails to decode (")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("kind", sorted(FILTERS))
def test_a_corrupted_chunk_stops_every_rank_with_one_line_and_exit_2(kind, ranks, tmp_path):
    path = corrupted(tmp_path, FILTERS[kind])
    out = tmp_path / "out.h5"
    proc = hpcdist("run", STATS, "--input", f"{path}:/x", "--output", str(out), "--shard-rows", SHARD_ROWS,
                   ranks=ranks, timeout=60)
    assert proc.returncode == 2, proc.stderr
    a, b = CORRUPT_ROWS
    ours = [line for line in proc.stderr.splitlines() if line.startswith("hpcdist: ")]
    assert len(ours) == 1 and f"{path}:/x: rows {a} to {b - 1} cannot be read: a chunk fails to decode" in ours[0], \
        proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5"]
