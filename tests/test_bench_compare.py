"""`hpcdist bench compare`: every peer computes the same statistics, checked before any time is
reported; a peer that disagrees ends the comparison loudly."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from hpcdist.bench import checks, numpy_stats, peers
from hpcdist.bench.cli import _cmd_compare
from hpcdist.cli import build_parser

from conftest import JOBS

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """40,000 x 3 float64 with NaNs, values outside [-5, 5] and chunks that do not divide evenly."""
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 2.5, size=(40_000, 3))
    x[rng.random(x.shape) < 0.01] = np.nan
    path = tmp_path_factory.mktemp("cmp") / "d.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("/x", data=x, chunks=(3_000, 3))
    return f"{path}:/x", x


def compare_args(spec, out, *more):
    return build_parser().parse_args(["bench", "compare", str(JOBS / "stats.py"), "--input", spec, "--out", str(out),
                                      "--max-load", "0", "--no-limits", "--repeat", "1", *more])


def test_cross_check_is_exact_for_counts_and_tolerant_for_floats(data):
    _, x = data
    lo, hi = np.full(3, -5.0), np.full(3, 5.0)
    whole = numpy_stats.finish(numpy_stats.piece_partial(x, lo, hi, 64))
    a = numpy_stats.piece_partial(x[:17_001], lo, hi, 64)
    b = numpy_stats.piece_partial(x[17_001:], lo, hi, 64)
    merged = numpy_stats.finish(numpy_stats.merge(a, b))
    diffs = checks.cross_check("split", whole, merged)
    assert set(diffs) == {"sum", "mean", "var"} and max(diffs.values()) < 1e-12
    # numpy's own answers
    assert np.array_equal(whole["count"], (~np.isnan(x)).sum(0))
    assert np.array_equal(whole["hist"][1], np.histogram(x[:, 1], 64, range=(-5, 5))[0])
    np.testing.assert_allclose(whole["var"], np.nanvar(x, axis=0), rtol=1e-12)
    for field, change in [("hist", lambda r: r["hist"].__setitem__((2, 30), r["hist"][2, 30] + 1)),
                          ("count", lambda r: r["count"].__setitem__(0, r["count"][0] - 1)),
                          ("var", lambda r: r["var"].__setitem__(1, r["var"][1] * (1 + 1e-6)))]:
        bad = {k: np.array(v, copy=True) for k, v in whole.items()}
        change(bad)
        with pytest.raises(checks.PeerMismatch, match=f"peer p disagrees with hpcdist_n1 on {field}"):
            checks.cross_check("p", whole, bad)


class OffByOneNumpy(peers.NumpyPeer):
    """A peer with a bug: one value lands in the wrong histogram bin."""

    def run(self, s):
        got = super().run(s)
        got.results["hist"][0, 10] -= 1
        got.results["hist"][0, 11] += 1
        return got


def test_a_peer_that_disagrees_fails_the_comparison_before_any_time_is_reported(data, tmp_path, capsys):
    spec, _ = data
    args = compare_args(spec, tmp_path / "out", "--peers", "hpcdist,numpy")
    code = _cmd_compare(args, peer_factory=lambda w: [peers.HpcdistPeer(1), OffByOneNumpy()])
    err = capsys.readouterr().err
    assert code == 1
    assert "peer numpy disagrees with hpcdist_n1 on hist" in err and "no times reported" in err
    assert "round 1/1" not in err                                    # nothing was timed
    assert not list((tmp_path / "out").glob("*.json"))               # and no record written


def test_every_peer_computes_the_same_statistics_as_hpcdist(data, tmp_path):
    spec, _ = data
    out = tmp_path / "out"
    assert _cmd_compare(compare_args(spec, out)) == 0
    [path] = out.glob("compare-stats-*.json")
    rec = json.loads(path.read_text())
    got = rec["peers"]
    assert list(got) == ["hpcdist_n1", "hpcdist_n2", "handwritten_n1", "handwritten_n2", "numpy",
                         "multiprocessing", "dask", "dask_threads"]
    assert all(v["status"] == "ok" for v in got.values()), got
    assert rec["checks"]["all_ok"] and set(rec["checks"]) >= {"numpy", "dask", "dask_threads", "multiprocessing", "handwritten_n2"}
    assert got["dask"]["ratio_base"] == "hpcdist_n2" and got["numpy"]["ratio_base"] == "hpcdist_n1"
    assert got["hpcdist_n2"]["ratio_vs_hpcdist"] == 1.0
    assert (out / "summary.md").read_text().count("| dask | 2 |") == 1
    assert (out / "compare.png").exists()


def test_a_missing_peer_is_reported_as_skipped_never_faked(data, tmp_path, monkeypatch, capsys):
    spec, _ = data

    class NoDask(peers.DaskPeer):
        def skip_reason(self, s):
            return "dask is not installed (pip install 'hpcdist[peers]')"

    out = tmp_path / "out"
    args = compare_args(spec, out, "--peers", "hpcdist,dask", "--workers", "1")
    assert _cmd_compare(args, peer_factory=lambda w: [peers.HpcdistPeer(1), NoDask(w)]) == 0
    rec = json.loads(next(out.glob("compare-*.json")).read_text())
    assert rec["peers"]["dask"] == {"status": "skipped", "reason": "dask is not installed (pip install "
                                    "'hpcdist[peers]')", "workers": 1}
    assert "dask: skipped" in capsys.readouterr().err
    assert "| dask | 1 | - | - | - | - | skipped" in (out / "summary.md").read_text()


def test_bad_compare_input_is_one_line_and_exit_2(data, tmp_path, capsys):
    spec, _ = data
    for argv, words in [(["--peers", "numpy,spark"], "unknown spark"), (["--peers", "numpy"], "must include hpcdist")]:
        assert _cmd_compare(compare_args(spec, tmp_path, *argv)) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1
    args = build_parser().parse_args(["bench", "compare", str(JOBS / "montecarlo_pi.py"), "--input", spec,
                                      "--out", str(tmp_path), "--max-load", "0", "--no-limits"])
    assert _cmd_compare(args) == 2 and "stats job" in capsys.readouterr().err
    args = build_parser().parse_args(["bench", "compare", str(JOBS / "stats.py"), "--input", "synthetic:rows=10",
                                      "--out", str(tmp_path), "--max-load", "0", "--no-limits"])
    assert _cmd_compare(args) == 2 and "HDF5 dataset" in capsys.readouterr().err
