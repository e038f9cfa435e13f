"""hpcdist never destroys a user's file: it refuses overlaps, adds instead of truncating, and a
failed write (a full disk) is one line and exit 1 with nothing at the final path.

Every refusal is one line on stderr, exit 2, and the input's bytes are the same afterwards.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from hpcdist.sources.synthetic import SyntheticSource

from conftest import JOBS, hpcdist, read_h5, run_ok

STATS = str(JOBS / "stats.py")
RANKS = [1, 2]


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def refused(proc: subprocess.CompletedProcess, text: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc) == f"hpcdist: error: {text}"


def leftovers(directory: Path) -> list[str]:
    """Temporary files an interrupted or failed write would leave."""
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


@pytest.fixture
def data(tmp_path):
    """data.h5:/x in the directory the runs start in (so paths can be typed relative to it)."""
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f.create_dataset("x", data=np.random.default_rng(1).normal(size=(5000, 2)), chunks=(500, 2))
    return tmp_path / "data.h5"


def run_in(directory: Path, *args: str, ranks: int) -> subprocess.CompletedProcess:
    return hpcdist("run", *args, ranks=ranks, cwd=directory)


# --- the output, the checkpoint and the input never meet ------------------------------------

@pytest.mark.parametrize("ranks", RANKS)
@pytest.mark.parametrize("form,reason", [
    ("data.h5", "same file"),
    ("./data.h5", "same file"),
    ("ABSOLUTE", "same file"),
    ("sym.h5", "the same file through a symbolic link"),
    ("hard.h5", "the same file through a hard link"),
])
def test_an_output_that_is_the_input_is_refused_and_the_input_is_untouched(data, form, reason, ranks):
    d = data.parent
    (d / "sym.h5").symlink_to("data.h5")
    os.link(d / "data.h5", d / "hard.h5")
    output = str(data) if form == "ABSOLUTE" else form
    before = digest(data)
    proc = run_in(d, STATS, "--input", "data.h5:/x", "--output", output, ranks=ranks)
    refused(proc, f"--output {output} is the input file data.h5 ({reason}); choose another output path")
    assert digest(data) == before
    assert (d / "sym.h5").is_symlink() and os.readlink(d / "sym.h5") == "data.h5"
    assert os.stat(d / "hard.h5").st_ino == os.stat(data).st_ino
    assert leftovers(d) == []


@pytest.mark.parametrize("ranks", RANKS)
def test_an_input_typed_through_a_symlink_is_still_the_input(data, ranks):
    (data.parent / "sym.h5").symlink_to("data.h5")
    before = digest(data)
    proc = run_in(data.parent, STATS, "--input", "sym.h5:/x", "--output", "data.h5", ranks=ranks)
    refused(proc, "--output data.h5 is the input file sym.h5 (the same file through a symbolic link); "
                  "choose another output path")
    assert digest(data) == before


@pytest.mark.parametrize("ranks", RANKS)
def test_an_npy_input_is_protected_too(tmp_path, ranks):
    np.save(tmp_path / "d.npy", np.arange(1000.0))
    before = digest(tmp_path / "d.npy")
    proc = run_in(tmp_path, STATS, "--input", "d.npy", "--output", "./d.npy", ranks=ranks)
    refused(proc, "--output ./d.npy is the input file d.npy (same file); choose another output path")
    assert digest(tmp_path / "d.npy") == before


@pytest.mark.parametrize("ranks", RANKS)
def test_a_checkpoint_that_is_the_input_is_refused(data, ranks):
    before = digest(data)
    proc = run_in(data.parent, STATS, "--input", "data.h5:/x", "--checkpoint", "data.h5", ranks=ranks)
    refused(proc, "--checkpoint data.h5 is the input file data.h5 (same file); choose another checkpoint path")
    assert digest(data) == before


@pytest.mark.parametrize("ranks", RANKS)
def test_a_checkpoint_whose_previous_generation_is_the_input_is_refused(data, ranks):
    os.rename(data, data.parent / "run.h5.prev")
    before = digest(data.parent / "run.h5.prev")
    proc = run_in(data.parent, STATS, "--input", "run.h5.prev:/x", "--checkpoint", "run.h5", ranks=ranks)
    refused(proc, "--checkpoint run.h5 (through its previous generation, run.h5.prev) is the input file "
                  "run.h5.prev (same file); choose another checkpoint path")
    assert digest(data.parent / "run.h5.prev") == before


@pytest.mark.parametrize("ranks", RANKS)
@pytest.mark.parametrize("output,what", [
    ("run.ckpt.h5", "the checkpoint file run.ckpt.h5"),
    ("run.ckpt.h5.prev", "the checkpoint's previous generation run.ckpt.h5.prev"),
])
def test_an_output_that_is_the_checkpoint_is_refused(data, output, what, ranks):
    proc = run_in(data.parent, STATS, "--input", "data.h5:/x", "--checkpoint", "run.ckpt.h5",
                  "--output", output, ranks=ranks)
    refused(proc, f"--output {output} is {what} (same file); choose another output path")
    assert not (data.parent / "run.ckpt.h5").exists()


@pytest.mark.parametrize("ranks", RANKS)
def test_an_output_that_is_a_file_behind_an_external_link_of_the_input_is_refused(tmp_path, ranks):
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["x"] = np.arange(3000.0)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["ext"] = h5py.ExternalLink("b.h5", "/x")
    before = digest(tmp_path / "b.h5")
    proc = run_in(tmp_path, STATS, "--input", "a.h5:/ext", "--output", "b.h5", ranks=ranks)
    refused(proc, f"--output b.h5 is {os.path.realpath(tmp_path / 'b.h5')}, a file the input a.h5:/ext reads "
                  f"(same file); choose another output path")
    assert digest(tmp_path / "b.h5") == before


@pytest.mark.parametrize("ranks", RANKS)
def test_a_file_hpcdist_did_not_write_is_never_replaced_by_an_output_or_a_checkpoint(data, ranks):
    d = data.parent
    (d / "notes.h5").write_text("my notes\n")
    proc = run_in(d, STATS, "--input", "data.h5:/x", "--output", "notes.h5", ranks=ranks)
    refused(proc, "--output notes.h5 exists and is not an HDF5 file, not an hpcdist result: hpcdist replaces "
                  "only its own results; remove it or choose another output path")
    proc = run_in(d, STATS, "--input", "data.h5:/x", "--checkpoint", "notes.h5", "--restart", "fresh",
                  ranks=ranks)
    refused(proc, "--checkpoint notes.h5: notes.h5 exists and is not an HDF5 file, not an hpcdist checkpoint: "
                  "hpcdist replaces and deletes only its own checkpoints; remove it or choose another "
                  "checkpoint path")
    assert (d / "notes.h5").read_text() == "my notes\n"


@pytest.mark.parametrize("ranks", RANKS)
def test_a_previous_result_is_replaced_by_a_rerun(data, ranks):
    run_ok("run", STATS, "--input", f"{data}:/x", "--output", str(data.parent / "out.h5"), ranks=ranks)
    first = read_h5(data.parent / "out.h5")
    run_ok("run", STATS, "--input", f"{data}:/x", "--output", str(data.parent / "out.h5"), ranks=ranks)
    assert read_h5(data.parent / "out.h5").keys() == first.keys()


# --- hpcdist gen adds a dataset, never truncates -----------------------------------------------

@pytest.fixture
def existing(tmp_path):
    """f.h5 with a dataset, a group with a dataset, and a file attribute, written by another tool."""
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.attrs["owner"] = "someone else"
        f.create_dataset("a", data=np.arange(100, dtype=np.int32))
        f.create_dataset("grp/b", data=np.linspace(0, 1, 50), compression="gzip")
    return path


def contents(path: Path) -> dict:
    """Every dataset's bytes, dtype and shape and every attribute, keyed by HDF5 path."""
    found = {}
    with h5py.File(path, "r") as f:
        found["/@"] = sorted((k, str(v)) for k, v in f.attrs.items())
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                v = obj[()]
                found[name] = (v.dtype.str, v.shape, v.tobytes(), sorted((k, str(x)) for k, x in obj.attrs.items()))
            else:
                found[name] = "group"
        f.visititems(visit)
    return found


def seeded(rows, cols=1, seed=0):
    src = SyntheticSource(rows=rows, cols=cols, seed=seed)
    return src.read(0, rows, src.empty(rows))


def test_gen_into_an_existing_file_adds_the_dataset_and_keeps_the_others_bit_identical(existing):
    before = contents(existing)
    run_ok("gen", f"{existing}:/new/c", "--rows", "3000", "--cols", "2", "--seed", "5")
    after = contents(existing)
    assert {k: v for k, v in after.items() if k not in ("new", "new/c")} == before
    with h5py.File(existing) as f:
        assert f["new/c"][()].tobytes() == seeded(3000, 2, 5).tobytes()
        assert not [n for n in f["new"] if ".tmp-" in n]
    assert leftovers(existing.parent) == []


def test_gen_refuses_an_existing_dataset_without_force_and_leaves_the_file_as_it_was(existing):
    before = digest(existing)
    proc = hpcdist("gen", f"{existing}:/a", "--rows", "10")
    refused(proc, f"{existing}:/a already exists (100 int32); use --force to replace this dataset")
    assert digest(existing) == before


def test_gen_force_replaces_only_that_dataset(existing):
    before = contents(existing)
    run_ok("gen", f"{existing}:/a", "--rows", "700", "--seed", "3", "--force")
    after = contents(existing)
    assert {k: v for k, v in after.items() if k != "a"} == {k: v for k, v in before.items() if k != "a"}
    with h5py.File(existing) as f:
        assert f["a"][()].tobytes() == seeded(700, 1, 3).tobytes()


def test_gen_never_replaces_a_group_even_with_force(existing):
    before = digest(existing)
    proc = hpcdist("gen", f"{existing}:/grp", "--rows", "10", "--force")
    refused(proc, f"{existing}:/grp is a group; hpcdist gen never replaces a group")
    assert digest(existing) == before


def test_gen_refuses_a_file_that_is_not_hdf5(tmp_path):
    target = tmp_path / "notes.h5"
    target.write_text("not hdf5\n")
    proc = hpcdist("gen", f"{target}:/x", "--rows", "10", "--force")
    refused(proc, f"{target} exists and is not an HDF5 file; hpcdist gen adds datasets only to HDF5 files "
                  f"it can open (choose another file)")
    assert target.read_text() == "not hdf5\n"


def test_gen_refuses_an_existing_npy_without_force(tmp_path):
    target = tmp_path / "d.npy"
    np.save(target, np.arange(5.0))
    before = digest(target)
    refused(hpcdist("gen", str(target), "--rows", "10"), f"{target} already exists; use --force to replace it")
    assert digest(target) == before
    run_ok("gen", str(target), "--rows", "10", "--seed", "2", "--force")
    assert np.load(target).tobytes() == seeded(10, 1, 2).reshape(10, 1).tobytes()


# --- a full disk: one line, exit 1, nothing at the final path ---------------------------------

@pytest.fixture
def tiny_disk(tiny_tmpfs):
    """A 1 MiB tmpfs, unmounted afterwards."""
    return tiny_tmpfs("1m")


def no_crash(proc: subprocess.CompletedProcess, directory: Path) -> None:
    assert proc.returncode == 1, proc.stderr                     # not 139 (SIGSEGV), not a traceback
    assert not [p for p in directory.iterdir() if p.name.startswith("core")]


@pytest.mark.parametrize("ranks", RANKS)
def test_an_output_on_a_full_disk_is_one_line_exit_1_and_no_file(tiny_disk, ranks, tmp_path):
    out = tiny_disk / "out.h5"
    # the histogram and its edges alone are 2.4 MB: more than the disk holds
    proc = hpcdist("run", STATS, "--input", "synthetic:rows=20000,cols=1", "--param", "bins=150000",
                   "--output", str(out), ranks=ranks, cwd=tmp_path)
    assert one_line(proc) == f"hpcdist: error: cannot write output {out}: No space left on device"
    no_crash(proc, tmp_path)
    assert not out.exists() and leftovers(tiny_disk) == []


@pytest.mark.parametrize("ranks", RANKS)
def test_a_small_output_on_a_disk_already_full_fails_the_same_way(tiny_disk, ranks, tmp_path):
    subprocess.run(["dd", "if=/dev/zero", f"of={tiny_disk}/filler", "bs=4k"], capture_output=True)
    out = tiny_disk / "out.h5"
    proc = hpcdist("run", STATS, "--input", "synthetic:rows=2000,cols=1", "--output", str(out),
                   ranks=ranks, cwd=tmp_path)
    assert one_line(proc) == f"hpcdist: error: cannot write output {out}: No space left on device"
    no_crash(proc, tmp_path)
    assert not out.exists() and leftovers(tiny_disk) == []


@pytest.mark.parametrize("target", ["new.h5:/x", "new.npy"])
def test_gen_on_a_full_disk_is_one_line_exit_1_and_no_file(tiny_disk, target, tmp_path):
    proc = hpcdist("gen", f"{tiny_disk}/{target}", "--rows", "200000", cwd=tmp_path)
    path = tiny_disk / target.split(":")[0]
    assert one_line(proc) == f"hpcdist: error: cannot write output {path}: No space left on device"
    no_crash(proc, tmp_path)
    assert not path.exists() and leftovers(tiny_disk) == []


def test_gen_into_an_existing_file_on_a_full_disk_leaves_it_as_it_was(tiny_disk, tmp_path):
    path = tiny_disk / "f.h5"
    with h5py.File(path, "w") as f:
        f["a"] = np.arange(1000.0)
    before = digest(path)
    proc = hpcdist("gen", f"{path}:/b", "--rows", "200000", cwd=tmp_path)
    assert one_line(proc) == f"hpcdist: error: cannot write output {path}: No space left on device"
    no_crash(proc, tmp_path)
    assert digest(path) == before and leftovers(tiny_disk) == []


# --- string results ---------------------------------------------------------------------------

STRING_JOB = '''
import numpy as np

def default_input(params):
    return "synthetic:rows=3000,cols=1,seed=0"

def map(shard, ctx):
    return {"n": np.asarray(len(shard), dtype=np.int64)}

def combine(a, b):
    return {"n": a["n"] + b["n"]}

def finalize(partial, ctx):
    return {"label": "h\\u00e9llo w\\u00f6rld", "names": ["alpha", "b", "gamma ray"],
            "codes": np.array([b"ab", b"xyz"]), "wide": np.array(["a", "bc"], dtype="U10"),
            "grid": np.array([["x", "yy"], ["zzz", ""]]), "n": partial["n"]}
'''


@pytest.mark.parametrize("ranks", RANKS)
def test_string_results_are_written_as_utf8_and_info_prints_what_the_run_printed(tmp_path, ranks):
    job = tmp_path / "strings.py"
    job.write_text(STRING_JOB)
    printed = run_ok("run", str(job), ranks=ranks).stdout
    out = tmp_path / "s.h5"
    run_ok("run", str(job), "--output", str(out), ranks=ranks)
    shown = run_ok("info", str(out)).stdout
    assert shown.split("\n", 1)[1] == printed                     # after info's own header line
    assert "'héllo wörld'" in printed and "[b'ab' b'xyz']" in printed
    with h5py.File(out) as f:
        for name in ("label", "names", "codes", "wide", "grid"):
            assert h5py.check_string_dtype(f[name].dtype).encoding == "utf-8", name
        assert f["names"].asstr()[()].tolist() == ["alpha", "b", "gamma ray"]
        assert f["n"].dtype == np.int64 and f["n"][()] == 3000


# --- info and inspect on the wrong kind of file -----------------------------------------------

@pytest.fixture
def files(tmp_path):
    (tmp_path / "text.h5").write_text("hello\n")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = 1
    run_ok("run", STATS, "--input", "synthetic:rows=2000", "--output", str(tmp_path / "result.h5"))
    run_ok("run", STATS, "--input", "synthetic:rows=2000", "--checkpoint", str(tmp_path / "ck.h5"),
           "--keep-checkpoint")
    return tmp_path


@pytest.mark.parametrize("command,name,message", [
    ("info", "text.h5", "{p}: not an HDF5 file; expected a result file written by hpcdist run --output"),
    ("info", "foreign.h5", "{p}: an HDF5 file but not an hpcdist result (no job and hpcdist_version "
                           "attributes); expected a result file written by hpcdist run --output"),
    ("info", "ck.h5", "{p}: an hpcdist checkpoint, not a result file; use hpcdist inspect {p}"),
    ("inspect", "text.h5", "{p}: not an HDF5 file; expected a checkpoint written by hpcdist run --checkpoint"),
    ("inspect", "foreign.h5", "{p}: an HDF5 file but not an hpcdist checkpoint (no format attribute); "
                              "expected a checkpoint written by hpcdist run --checkpoint"),
    ("inspect", "result.h5", "{p}: an hpcdist result file, not a checkpoint; use hpcdist info {p}"),
])
def test_info_and_inspect_refuse_the_wrong_kind_of_file_in_one_line(files, command, name, message):
    path = files / name
    proc = hpcdist(command, str(path))
    refused(proc, message.format(p=path))
    assert proc.stdout == ""


def test_info_and_inspect_accept_their_own_kind(files):
    assert "job stats" in run_ok("info", str(files / "result.h5")).stdout
    assert "valid, generation" in run_ok("inspect", str(files / "ck.h5")).stdout
