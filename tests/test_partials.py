"""Partials travel as fixed-layout bytes: arrays in, the same arrays out, never code."""

import numpy as np
import pytest

from hpcdist.partials import check_partial, decode, encode


def test_round_trip_keeps_dtypes_shapes_and_bits():
    nodes = [
        (0, 3, {"count": np.arange(4, dtype=np.int64), "mean": np.array([0.1, np.nan, -0.0]),
                "flag": np.asarray(True), "scalar": np.asarray(7, dtype=np.uint32)}),
        (2, 1, np.linspace(0, 1, 7, dtype=np.float32).reshape(7, 1)),
        (1, 0, {"empty": np.zeros((0, 3))}),
    ]
    out = decode(encode(nodes))
    for (l1, i1, p1), (l2, i2, p2) in zip(nodes, out):
        assert (l1, i1) == (l2, i2)
        items1 = p1.items() if isinstance(p1, dict) else [("", p1)]
        items2 = p2.items() if isinstance(p2, dict) else [("", p2)]
        for (n1, a1), (n2, a2) in zip(items1, items2):
            assert n1 == n2 and a1.dtype == a2.dtype and a1.shape == a2.shape
            assert a1.tobytes() == a2.tobytes()
    assert out[0][2]["mean"].flags.writeable


def test_the_wire_format_is_json_plus_raw_bytes():
    buf = encode([(0, 0, {"x": np.array([1.5])})])
    header_len = int(buf[:8].view("<i8")[0])
    assert bytes(buf[8:8 + header_len]) == b'{"meta": {}, "nodes": [[0, 0, [["x", "<f8", [1]]]]]}'


@pytest.mark.parametrize("bad", [[1, 2], {"x": [1.0]}, {"x": np.array(["a"])}, {1: np.zeros(1)}, None])
def test_non_array_partials_are_rejected_with_the_culprit_named(bad):
    with pytest.raises(TypeError, match="job.map"):
        check_partial(bad, "job.map")
