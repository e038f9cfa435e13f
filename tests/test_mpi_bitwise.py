"""The product's promise: the same bits at any rank count, launched with a real mpiexec."""

import numpy as np
import pytest

from conftest import JOBS, assert_same_bits, read_h5, run_ok
from hpcdist.output import read_result

RANKS = [1, 2, 3, 4, 7]        # the stats job, at every size the issue names
FEWER_RANKS = [1, 2, 3]        # the other jobs: enough to catch any order dependence

CASES = {
    "stats": ["--shard-rows", "700"],
    "stats-fixed-range": ["--shard-rows", "513", "--param", "lo=-3", "--param", "hi=9", "--param", "bins=7"],
    "montecarlo_pi": ["--param", "samples=300000", "--shard-rows", "9999"],
    "kmeans": ["--param", "k=4", "--param", "iters=4", "--param", "tol=0", "--shard-rows", "600"],
    "topk": ["--param", "k=30", "--shard-rows", "777"],
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bitwise")
    rng = np.random.default_rng(11)
    data = rng.normal(3.0, 2.0, size=(9_001, 3))
    data[rng.random(data.shape) < 0.01] = np.nan
    np.save(d / "x.npy", data)
    np.save(d / "ints.npy", rng.integers(0, 100, 20_000))
    return d


@pytest.mark.parametrize("case", sorted(CASES))
def test_results_are_bit_identical_at_any_rank_count(case, inputs, tmp_path):
    job = case.split("-")[0]
    data = {"stats": "x.npy", "kmeans": "x.npy", "topk": "ints.npy"}.get(job)
    args = ["run", str(JOBS / f"{job}.py"), *CASES[case]]
    if data:
        args += ["--input", str(inputs / data)]
    results = {}
    ranks = RANKS if job == "stats" else FEWER_RANKS
    for n in ranks:
        out = tmp_path / f"{n}.h5"
        run_ok(*args, "--output", str(out), ranks=n)
        results[n] = read_h5(out)
    for n in ranks[1:]:
        assert_same_bits(results[1], results[n])


def test_output_records_the_run(inputs, tmp_path):
    out = tmp_path / "o.h5"
    run_ok("run", str(JOBS / "stats.py"), "--input", str(inputs / "x.npy"), "--output", str(out),
           "--shard-rows", "1000", "--schedule", "static", ranks=3)
    a = read_result(str(out))[1]                        # per-rank lists from /hpcdist/ranks
    assert a["job"] == "stats" and a["ranks"] == 3 and a["shards"] == 10 and a["rows"] == 9001
    assert a["input"].endswith("x.npy") and a["hpcdist_version"]
    assert a["elapsed_s"] > 0 and a["compile_s"] >= 0
    assert a["passes"] == 2                             # a range pass, then the statistics
    assert list(a["rank_shards"]) == [6, 6, 8]          # shards mapped per rank, all passes
    assert a["shards_computed"] == 20 and a["shards_resumed"] == 0
    assert '"bins": 64' in a["params"]


def test_more_ranks_than_shards_still_works(inputs, tmp_path):
    out1, out7 = tmp_path / "1.h5", tmp_path / "7.h5"
    args = ["run", str(JOBS / "stats.py"), "--input", str(inputs / "x.npy"), "--shard-rows", "5000"]
    run_ok(*args, "--output", str(out1), ranks=1)
    run_ok(*args, "--output", str(out7), ranks=7)   # 2 shards, 5 ranks with nothing to do
    assert_same_bits(read_h5(out1), read_h5(out7))


def test_more_than_2_to_the_31_elements(tmp_path):
    rows, cols = (1 << 28) + 3, 8                     # 2**31 + 24 one-byte elements, a sparse file
    path = tmp_path / "big.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, cols))
    mm[-1, :] = 7
    mm[0, 0] = 1
    mm.flush()
    del mm
    out = tmp_path / "big.h5"
    run_ok("run", str(JOBS.parent / "tests" / "jobs" / "byte_sum.py"), "--input", str(path),
           "--output", str(out), "--shard-rows", str(1 << 25), ranks=2, timeout=240)
    res = read_h5(out)
    assert res["sum"] == 8 * 7 + 1 and res["rows"] == rows and res["last"] == rows
