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


def describe_input(spec: str) -> str:
    """What a run read, in words: ``synthetic: 1,000,000 rows x 4 float64, seed 0, 0.1% NaN``
    for generated data (so a printed ``nan_count`` makes sense), else the spec as given."""
    if spec.startswith("synthetic:"):
        from hpcdist.errors import UserError
        from hpcdist.sources import parse_synthetic
        try:
            k = parse_synthetic(spec)
        except UserError:
            return spec
        dist = k.get("dist", "normal")
        parts = [f"synthetic: {k['rows']:,} rows x {k.get('cols', 1)} {k.get('dtype', 'float64')}",
                 f"seed {k.get('seed', 0)}"]
        if dist != "normal":
            parts.append(f"{dist} values")
        if k.get("nan", 0.0):
            parts.append(f"{100 * k['nan']:g}% NaN")
        return ", ".join(parts)
    if spec.startswith("range:"):
        return f"range: {spec[len('range:'):]} row numbers (the job makes its own values)"
    return spec


def format_full(results: Mapping[str, np.ndarray]) -> str:
    """Every value of every result, uncut (``hpcdist info --full``)."""
    lines = []
    for name, value in results.items():
        arr = np.asarray(value)
        shape = "" if arr.ndim == 0 else f"  [{' x '.join(map(str, arr.shape))} {arr.dtype}]"
        text = np.array2string(arr, threshold=arr.size + 1, max_line_width=100, separator=" ",
                               floatmode="unique")     # every digit that tells two floats apart
        lines.append(f"  {name}{shape}\n" + "\n".join("    " + ln for ln in text.splitlines()))
    return "\n".join(lines)
