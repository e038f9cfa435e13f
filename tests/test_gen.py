"""``hpcdist gen``: the file holds exactly the synthetic rows, written in bounded memory."""

import subprocess
import sys

import h5py
import numpy as np

from hpcdist.sources.synthetic import SyntheticSource

from conftest import ROOT, JOBS, assert_same_bits, read_h5, run_ok


def test_gen_writes_the_seeded_rows_chunked_as_asked(tmp_path):
    run_ok("gen", f"{tmp_path}/d.h5:/grp/x", "--rows", "10000", "--cols", "3", "--seed", "4",
           "--chunk-rows", "1000", "--nan", "0.01", "--dtype", "float32")
    src = SyntheticSource(rows=10000, cols=3, dtype="float32", seed=4, nan=0.01)
    with h5py.File(tmp_path / "d.h5") as f:
        ds = f["/grp/x"]
        assert ds.chunks == (1000, 3) and ds.dtype == np.float32
        assert ds[()].tobytes() == src.read(0, 10000, src.empty(10000)).tobytes()


def test_gen_npy_and_a_run_on_it_equal_a_run_on_the_synthetic_source(tmp_path):
    run_ok("gen", f"{tmp_path}/d.npy", "--rows", "20000", "--cols", "2", "--seed", "9")
    for name, spec in (("file", f"{tmp_path}/d.npy"), ("synthetic", "synthetic:rows=20000,cols=2,seed=9")):
        run_ok("run", str(JOBS / "stats.py"), "--input", spec, "--output", f"{tmp_path}/{name}.h5",
               "--shard-rows", "4096")
    assert_same_bits(read_h5(tmp_path / "file.h5"), read_h5(tmp_path / "synthetic.h5"))


def test_gen_streams_in_bounded_memory(tmp_path):
    # the process's own peak (VmHWM), not ru_maxrss: a child started by vfork inherits the parent's
    # high-water mark in ru_maxrss, so it grew with whatever the test process had loaded before
    code = ("import sys; from hpcdist.cli import main; "
            f"rc = main(['gen', '{tmp_path}/big.h5:/x', '--rows', '12000000', '--cols', '4', '--dist', 'uniform']); "
            "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')) // 1024)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    peak_mib = int(proc.stdout.split()[-1])
    assert (tmp_path / "big.h5").stat().st_size > 380_000_000       # 384 MB of data...
    assert peak_mib < 330                                            # ...never all in memory
