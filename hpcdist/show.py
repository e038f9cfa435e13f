"""Human-readable text for results and run facts (``hpcdist info``, ``hpcdist run`` without -o)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np


def format_result(results: Mapping[str, np.ndarray]) -> str:
    width = max((len(k) for k in results), default=0)
    lines = []
    for name, value in results.items():
        arr = np.asarray(value)
        text = np.array2string(arr, max_line_width=100, threshold=40, precision=6, separator=" ")
        pad = "\n" + " " * (width + 4)
        shape = "" if arr.ndim == 0 else f"  [{' x '.join(map(str, arr.shape))} {arr.dtype}]"
        lines.append(f"  {name:<{width}}  {text.replace(chr(10), pad)}{shape}")
    return "\n".join(lines)


def format_attrs(path: str, attrs: Mapping[str, Any]) -> str:
    head = (f"{path}: job {attrs.get('job', '?')} on {attrs.get('input', '?')}: "
            f"{attrs.get('rows', 0):,} rows, {attrs.get('shards', '?')} shards, "
            f"{attrs.get('ranks', '?')} rank(s), {attrs.get('elapsed_s', float('nan')):.3f} s")
    params = attrs.get("params")
    return head + (f"\n  params {params}" if params and params != "{}" else "")
