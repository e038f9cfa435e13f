"""Many files as one input: a glob or an ``@list`` in the file part, rows concatenated in file order."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import JOBS, assert_same_bits, hpcdist, run_ok
from hpcdist.sources import open_source

STATS = str(JOBS / "stats.py")
SIZES = (7, 13, 1, 29, 50)     # parts of unequal length: shards of 6 rows cross every boundary


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(11)
    blocks = [rng.normal(size=(n, 3)) for n in SIZES]
    blocks[1][2, 1] = np.nan
    for i, block in enumerate(blocks):
        with h5py.File(tmp_path / f"part-{i:03d}.h5", "w") as f:
            f["x"] = block
        np.save(tmp_path / f"part-{i:03d}.npy", block)
    whole = np.concatenate(blocks)
    with h5py.File(tmp_path / "all.h5", "w") as f:
        f["x"] = whole
    # the list's order is the row order, not the names' order
    (tmp_path / "files.txt").write_text("".join(f"part-{i:03d}.h5\n" for i in (4, 0, 1, 2, 3)))
    with h5py.File(tmp_path / "listed.h5", "w") as f:
        f["x"] = np.concatenate([blocks[4], *blocks[:4]])
    return tmp_path, whole


def stats(spec: str, out: Path, ranks: int, *extra: str) -> dict[str, np.ndarray]:
    run_ok("run", STATS, "--input", spec, "--output", str(out), "--shard-rows", "6", *extra, ranks=ranks)
    with h5py.File(out, "r") as f:
        return {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}


@pytest.mark.parametrize("ranks,schedule", [(1, "static"), (2, "dynamic"), (3, "static")])
def test_a_glob_of_hdf5_parts_gives_the_same_bits_as_one_file_of_their_rows(parts, ranks, schedule):
    d, _ = parts
    one = stats(f"{d}/all.h5:/x", d / "one.h5", ranks, "--schedule", schedule)
    many = stats(f"{d}/part-*.h5:/x", d / "many.h5", ranks, "--schedule", schedule)
    assert_same_bits(many, one)
    with h5py.File(d / "many.h5") as f:
        assert f.attrs["rows"] == sum(SIZES)


def test_a_glob_of_npy_parts_and_an_at_list_read_their_files_in_order(parts):
    d, _ = parts
    assert_same_bits(stats(f"{d}/part-*.npy", d / "npy.h5", 2), stats(f"{d}/all.h5:/x", d / "one.h5", 1))
    assert_same_bits(stats(f"@{d}/files.txt:/x", d / "list.h5", 3), stats(f"{d}/listed.h5:/x", d / "l1.h5", 1))


def test_no_matching_file_is_one_line_and_exit_2(tmp_path):
    proc = hpcdist("run", STATS, "--input", f"{tmp_path}/part-*.h5:/x", "--output", str(tmp_path / "o.h5"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"hpcdist: error: {tmp_path}/part-*.h5:/x: no file matches {tmp_path}/part-*.h5"
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.parametrize("odd,what", [
    (np.zeros((4, 3), dtype=np.float32), "dtype float32, but {first} has dtype float64"),
    (np.zeros((4, 2)), "rows of shape (2,), but {first} has rows of shape (3,)"),
])
def test_a_part_that_differs_is_named_with_the_difference(parts, odd, what):
    d, _ = parts
    with h5py.File(d / "part-002.h5", "w") as f:
        f["x"] = odd
    proc = hpcdist("run", STATS, "--input", f"{d}/part-*.h5:/x", "--output", str(d / "o.h5"), ranks=2)
    assert proc.returncode == 2, proc.stderr
    line = what.format(first=f"{d}/part-000.h5")
    assert proc.stderr.strip().splitlines() == [
        f"hpcdist: error: {d}/part-002.h5: {line} (every file of {d}/part-*.h5:/x must agree)"]


def test_the_fingerprint_covers_every_file_and_files_lists_them_all(parts):
    d, _ = parts
    with open_source(f"{d}/part-*.h5:/x") as source:
        before = source.describe()
        assert source.files() == [os.path.realpath(d / f"part-{i:03d}.h5") for i in range(len(SIZES))]
    os.utime(d / "part-003.h5", ns=(1, 1))
    with open_source(f"{d}/part-*.h5:/x") as source:
        after = source.describe()
    assert [f for f in before["files"] if f not in after["files"]] == [before["files"][3]]


def test_an_output_over_one_of_the_parts_is_refused(parts):
    d, _ = parts
    proc = hpcdist("run", STATS, "--input", f"{d}/part-*.h5:/x", "--output", str(d / "part-001.h5"))
    target = d / "part-001.h5"
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"hpcdist: error: --output {target} is {target}, a file the input "
                                   f"{d}/part-*.h5:/x reads (same file); choose another output path")


def open_parts(directory: Path) -> set[str]:
    """The files under ``directory`` this process holds open (descriptors and mappings)."""
    held = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
    with open("/proc/self/maps") as fh:
        held |= {line.split()[-1] for line in fh if len(line.split()) == 6}
    return {h for h in held if h.startswith(str(directory))}


def test_thousands_of_parts_keep_at_most_one_file_open(tmp_path):
    rows = np.arange(3000 * 2, dtype=np.int64).reshape(3000, 2)
    for i in range(1500):
        np.save(tmp_path / f"p{i:05d}.npy", rows[2 * i: 2 * i + 2])
    with open_source(f"{tmp_path}/p*.npy") as source:
        assert open_parts(tmp_path) == set()
        got = source.read(999, 2000, source.empty(1001))
        assert open_parts(tmp_path) == {str(tmp_path / "p00999.npy")}
        assert np.array_equal(got, rows[999:2000])
    assert open_parts(tmp_path) == set()


def test_a_writing_job_over_many_files_writes_what_it_writes_over_one(parts):
    d, _ = parts
    normalize = str(JOBS / "normalize.py")
    for spec, out in ((f"{d}/part-*.npy", "many-z.h5"), (f"{d}/all.h5:/x", "one-z.h5")):
        run_ok("run", normalize, "--input", spec, "--output", str(d / out), "--shard-rows", "6", ranks=2)
    with h5py.File(d / "many-z.h5") as many, h5py.File(d / "one-z.h5") as one:
        assert many["x"].shape == (sum(SIZES), 3)
        assert many["x"][()].tobytes() == one["x"][()].tobytes()


def test_with_agree_only_the_deciding_rank_opens_every_part(parts):
    d, whole = parts
    spec = f"{d}/part-*.h5:/x"
    decided = []
    with open_source(spec, agree=lambda decide: decided.append(decide()) or decided[0]) as source:
        assert source.rows == sum(SIZES)
    (d / "part-003.h5").write_bytes(b"not read by this rank")     # another rank sees rank 0's table
    with open_source(spec, agree=lambda decide: decided[0]) as source:
        assert source.rows == sum(SIZES)
        assert source.read(0, 21, source.empty(21)).tobytes() == whole[:21].tobytes()
