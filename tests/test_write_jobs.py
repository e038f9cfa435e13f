"""Jobs that write row datasets: normalize (1:1) and select (a filter), the same bits at any rank
count and schedule, outputs that chain as inputs, job bugs and missing options in one line, and
exactly-once writing across kill -9 and resume."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import JOBS, ROOT, hpcdist, run_ok
from hpcdist.checkpoint.store import previous_path, read
from hpcdist.output import read_result
from hpcdist.sinks import Output
from hpcdist.sinks.rows import RowSink
from test_checkpoint_restart import Launch, wait_for

NORMALIZE, SELECT, STATS = (str(JOBS / f"{n}.py") for n in ("normalize", "select", "stats"))
SLOW_COPY = str(ROOT / "tests" / "jobs" / "slow_copy.py")
WRONG = str(ROOT / "tests" / "jobs" / "wrong_rows.py")


def datasets(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}


def same_bits(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes(), k


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if ".tmp-" in p.name)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, np.ndarray]:
    d = tmp_path_factory.mktemp("write")
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 3.0, size=(1003, 3)).astype(np.float32)
    x[rng.random(x.shape) < 0.02] = np.nan
    x[:, 2] = x[:, 2] * 1000 + 1e4
    with h5py.File(d / "in.h5", "w") as f:
        f.create_dataset("x", data=x, chunks=(50, 3))
    return d, x


@pytest.fixture(scope="module")
def normalized(data) -> dict[int, dict[str, np.ndarray]]:
    d, _ = data
    got = {}
    for ranks, schedule in ((1, "static"), (2, "dynamic"), (3, "static"), (7, "dynamic")):
        out = d / f"norm{ranks}.h5"
        run_ok("run", NORMALIZE, "--input", f"{d}/in.h5:/x", "--output", str(out), "--shard-rows", "100",
               "--schedule", schedule, ranks=ranks)
        got[ranks] = datasets(out)
    return got


def test_normalize_writes_the_z_score_of_every_column_as_numpy_does(data, normalized):
    _, x = data
    z = normalized[1]["x"]
    wide = x.astype(np.float64)
    expected = (wide - np.nanmean(wide, axis=0)) / np.nanstd(wide, axis=0)
    assert z.dtype == np.float64 and z.shape == x.shape
    assert np.array_equal(np.isnan(z), np.isnan(x))                    # NaN stays NaN
    np.testing.assert_allclose(z, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(normalized[1]["std"], np.nanstd(wide, axis=0), rtol=1e-13)


def test_normalize_gives_the_same_bits_at_1_2_3_and_7_ranks_and_stats_mean(data, normalized):
    d, _ = data
    for ranks in (2, 3, 7):
        same_bits(normalized[ranks], normalized[1])
    run_ok("run", STATS, "--input", f"{d}/in.h5:/x", "--output", str(d / "stats.h5"), "--shard-rows", "100")
    with h5py.File(d / "stats.h5") as f:
        assert f["mean"][()].tobytes() == normalized[1]["mean"].tobytes()        # the same exact kernels
        assert np.sqrt(f["var"][()]).tobytes() == normalized[1]["std"].tobytes()
    assert leftovers(d) == []


@pytest.mark.parametrize("ranks,schedule", [(1, "static"), (2, "dynamic"), (3, "static"), (4, "dynamic"),
                                            (7, "dynamic")])
def test_select_writes_the_rows_in_range_and_their_numbers_in_input_order(data, ranks, schedule):
    d, x = data
    out = d / f"sel{ranks}.h5"
    run_ok("run", SELECT, "--input", f"{d}/in.h5:/x", "--param", "col=1", "--param", "lo=2", "--param", "hi=6.5",
           "--output", str(out), "--shard-rows", "60", "--schedule", schedule, ranks=ranks)
    keep = np.flatnonzero((x[:, 1] >= 2) & (x[:, 1] <= 6.5))
    got = datasets(out)
    assert got["kept"] == len(keep)
    assert got["rows"].dtype == np.float32 and got["index"].dtype == np.int64
    assert np.array_equal(got["index"], keep)
    assert got["rows"].tobytes() == x[keep].tobytes()


@pytest.mark.parametrize("lo,hi,kept", [(1e9, 2e9, 0), (-np.inf, np.inf, 1003)])
def test_a_filter_that_keeps_no_rows_or_all_rows(data, lo, hi, kept):
    d, x = data
    clean = np.nan_to_num(x)
    with h5py.File(d / "clean.h5", "w") as f:
        f["x"] = clean
    out = d / f"sel-{kept}.h5"
    run_ok("run", SELECT, "--input", f"{d}/clean.h5:/x", "--param", "col=0", "--param", f"lo={lo}",
           "--param", f"hi={hi}", "--output", str(out), "--shard-rows", "100", ranks=2)
    got = datasets(out)
    assert got["rows"].shape == (kept, 3) and got["index"].shape == (kept,)
    assert got["rows"].tobytes() == clean[:kept].tobytes()


def test_outputs_chain_as_inputs_and_are_plain_hdf5(data, normalized):
    d, _ = data
    run_ok("run", SELECT, "--input", f"{d}/norm2.h5:/x", "--param", "col=0", "--param", "lo=-0.5",
           "--param", "hi=0.5", "--output", str(d / "chain.h5"), ranks=2)
    run_ok("run", STATS, "--input", f"{d}/chain.h5:/rows", "--output", str(d / "chain-stats.h5"))
    results, _ = read_result(str(d / "chain.h5"))       # 'hpcdist info': the results, not the rows
    assert list(results) == ["kept"]
    with h5py.File(d / "chain.h5") as f:
        assert f["rows"].attrs["hpcdist_rows"] == "filter" and f["index"].attrs["hpcdist_rows"] == "filter"
    z = normalized[1]["x"]
    picked = z[(z[:, 0] >= -0.5) & (z[:, 0] <= 0.5)]
    with h5py.File(d / "chain-stats.h5") as f:
        assert f["count"][0] == len(picked)
        np.testing.assert_allclose(f["mean"][()], np.nanmean(picked, axis=0), rtol=1e-12)
    if shutil.which("h5dump"):
        dump = subprocess.run(["h5dump", "-H", str(d / "chain.h5")], capture_output=True, text=True)
        assert dump.returncode == 0 and 'DATASET "rows"' in dump.stdout


def test_a_writing_job_without_output_is_one_line_and_exit_2(data):
    d, _ = data
    proc = hpcdist("run", SELECT, "--input", f"{d}/in.h5:/x", ranks=2)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "hpcdist: error: job select writes datasets (/rows, /index): give --output FILE.h5"


def test_transform_changing_its_dtype_is_one_line_naming_the_shard_and_leaves_no_file(tmp_path):
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["x"] = np.arange(100.0).reshape(50, 2)
    out = tmp_path / "out.h5"
    proc = hpcdist("run", WRONG, "--input", f"{tmp_path}/in.h5:/x", "--output", str(out), "--shard-rows", "10")
    assert proc.returncode == 1
    assert f"{WRONG}: transform returned shape (10, 2) (float32) for 'y' in shard 3, expected rows of shape " \
           f"(*, 2) (float64)" in proc.stderr.strip().splitlines()[-1]
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_result_named_like_a_written_dataset_is_one_line_and_leaves_no_file(data, tmp_path):
    d, _ = data
    clash = tmp_path / "clash.py"
    clash.write_text(Path(SELECT).read_text().replace('return {"kept": partial}', 'return {"rows": partial}'))
    proc = hpcdist("run", str(clash), "--input", f"{d}/in.h5:/x", "--output", str(tmp_path / "o.h5"), ranks=2)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (f"hpcdist: rank 0: error: {clash}: finalize returned 'rows', the name "
                                           f"of a dataset the job writes (OUTPUTS)")
    assert not (tmp_path / "o.h5").exists() and leftovers(tmp_path) == []


def test_offsets_past_2_to_the_31_rows_and_bytes(tmp_path):
    rows = 3 * 2**31 + 7                        # a sparse file: only the rows written take space
    sink = RowSink("job.py", {"v": Output(rows="filter", dtype=np.uint8, row_shape=())}, str(tmp_path / "o.h5"),
                   str(tmp_path / ".o.h5.tmp-rows-test"))
    sink.fix({"v": np.zeros(0, np.uint8)})
    sink.place({"v": rows})
    sink.write("v", np.array([1, 2, 3], np.uint8), rows - 3)
    sink.write("v", np.array([9], np.uint8), 2**32 + 1)
    sink.sync()
    sink.deliver(lambda path: h5py.File(path, "w").close())
    with h5py.File(tmp_path / "o.h5") as f:
        assert f["v"].shape == (rows,)
        assert list(f["v"][rows - 4:]) == [0, 1, 2, 3] and f["v"][2**32 + 1] == 9


SLOW_ARGS = ["--input", "synthetic:rows=12000,cols=3,seed=9", "--shard-rows", "200", "--param", "sleep=0.03"]


@pytest.fixture(scope="module")
def slow_reference(tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("slowref") / "ref.h5"
    run_ok("run", SLOW_COPY, *SLOW_ARGS, "--param", "sleep=0", "--output", str(out), ranks=2)
    return datasets(out)


def in_writing_pass(ckpt: Path) -> bool:
    for path in (ckpt, Path(previous_path(str(ckpt)))):
        try:
            saved = read(str(path))
        except Exception:
            continue
        if saved.pass_index == 1 and 0 < saved.shards_done() < 60:
            return True
    return False


@pytest.mark.parametrize("how,resume_ranks", [("kill -9", 2), ("SIGTERM", 1)])
def test_a_writing_run_stopped_in_its_writing_pass_resumes_without_rewriting_durable_rows(
        tmp_path, slow_reference, how, resume_ranks):
    ckpt, out = tmp_path / "run.ckpt.h5", tmp_path / "out.h5"
    run = Launch(3, SLOW_COPY, *SLOW_ARGS, "--checkpoint", str(ckpt), "--checkpoint-every", "0.05",
                 "--output", str(out))
    pids = run.ready()
    wait_for(lambda: in_writing_pass(ckpt))
    os.kill(pids[1], signal.SIGKILL if how == "kill -9" else signal.SIGTERM)
    code, err = run.finish()
    assert code == (75 if how == "SIGTERM" else code) and code != 0, err
    assert not out.exists()
    saved = read(str(ckpt)) if ckpt.exists() else read(previous_path(str(ckpt)))
    done = saved.shards_done() if saved.pass_index == 1 else 0
    if how == "SIGTERM":                 # the rows made durable live beside the output they were for
        assert done > 0
        other = hpcdist("run", SLOW_COPY, *SLOW_ARGS, "--checkpoint", str(ckpt), "--output",
                        str(tmp_path / "elsewhere.h5"))
        assert other.returncode == 2 and other.stderr.strip().splitlines()[-1].startswith(
            f"hpcdist: error: the checkpoint counts the rows of {done:,} shards as written, but their file "), other.stderr
    proc = run_ok("run", SLOW_COPY, *SLOW_ARGS, "--checkpoint", str(ckpt), "--output", str(out),
                  ranks=resume_ranks)
    assert "resuming from" in proc.stderr
    same_bits(datasets(out), slow_reference)
    with h5py.File(out) as f:
        assert f.attrs["shards_computed"] == 60 - done        # durable rows were not written again
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("ranks", [1, 3])
def test_rows_on_a_full_disk_are_one_line_exit_1_and_no_file(tiny_tmpfs, ranks):
    disk = tiny_tmpfs("1m")
    out = disk / "z.h5"             # 2.4 MB of rows: more than the disk holds
    proc = hpcdist("run", NORMALIZE, "--input", "synthetic:rows=100000,cols=3,seed=1", "--output", str(out),
                   "--shard-rows", "10000", ranks=ranks)
    assert proc.returncode == 1, proc.stderr
    mine = [line for line in proc.stderr.splitlines() if line.startswith("hpcdist:")]
    assert mine and all(line.endswith(f"error: cannot write output {out}: No space left on device")
                        for line in mine), proc.stderr
    assert not out.exists() and leftovers(disk) == []


def test_a_multi_pass_job_filters_with_what_its_own_passes_found(data):
    d, x = data
    clean = np.nan_to_num(x).astype(np.float64)
    with h5py.File(d / "clean64.h5", "w") as f:
        f["x"] = clean
    out = d / "above.h5"
    proc = run_ok("run", str(ROOT / "tests" / "jobs" / "above_mean.py"), "--input", f"{d}/clean64.h5:/x",
                  "--output", str(out), "--shard-rows", "100", "--schedule", "dynamic", ranks=3)
    got = datasets(out)
    with h5py.File(out) as f:
        assert f.attrs["passes"] == 3                       # the job's pass, counting, writing
    assert got["above"].tobytes() == clean[clean[:, 0] > got["mean"]].tobytes()
    assert got["rows"] == len(clean), proc.stderr
