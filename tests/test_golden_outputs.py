"""The shipped jobs give, bit for bit, the results they gave before the house was renovated.

The files in tests/golden/outputs were written by commit 331f79a (before issue 10's refactor) from
each job's default input and params; a change that moves any bit of any result fails here.
"""

import h5py
import pytest

from conftest import JOBS, ROOT, assert_same_bits, read_h5, run_ok

GOLDEN = ROOT / "tests" / "golden" / "outputs"


@pytest.mark.parametrize("ranks", [1, 3])
@pytest.mark.parametrize("job", ["stats", "kmeans", "topk", "montecarlo_pi"])
def test_default_run_matches_the_committed_results(job, ranks, tmp_path):
    out = tmp_path / f"{job}.h5"
    run_ok("run", str(JOBS / f"{job}.py"), "--output", str(out), ranks=ranks, timeout=180)
    with h5py.File(GOLDEN / f"{job}.h5", "r") as f:
        golden = {k: f[k][()] for k in f}
    assert_same_bits(read_h5(out), golden)
