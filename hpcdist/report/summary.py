"""The text half of ``hpcdist report``: time by phase, imbalance, stragglers, GB/s, resumed shards."""

from __future__ import annotations

import numpy as np

from hpcdist.report.data import RunView

STRAGGLER_MIN_S = 0.05     # finishing this much after the median rank (and 10% of the run) is late


def summary(v: RunView) -> str:
    a, r = v.attrs, v.ranks
    n = v.size
    lines = [f"{v.path}: job {a.get('job', '?')}, {n} rank(s) on {a.get('nodes', '?')} node(s), "
             f"{a.get('shards', '?')} shards x {a.get('passes', '?')} pass(es), {a.get('elapsed_s', 0.0):.3f} s, "
             f"schedule {a.get('schedule', '?')}"]
    lines += _phases(v)
    busy = np.asarray(r.get("busy_s", np.zeros(n)), dtype=float)
    if len(busy):
        mean = float(busy.mean())
        worst = int(np.argmax(busy))
        ratio = busy[worst] / mean if mean > 0 else 1.0
        lines.append(f"imbalance: busiest rank {worst} ({busy[worst]:.3f} s busy) vs mean {mean:.3f} s: "
                     f"max/mean {ratio:.2f} (1.00 = perfect)")
    lines.append(_stragglers(v))
    lines.append(_throughput(v))
    resumed = int(v.resumed.sum())
    if resumed:
        lines.append(f"resumed: {resumed} shard(s) came from the checkpoint (marked in shards.png), "
                     f"{int(v.mapped.sum())} were computed in this run")
    return "\n".join(lines)


def _phases(v: RunView) -> list[str]:
    r = v.ranks
    out = ["time by phase (sum over ranks | slowest rank):"]
    for name, label in (("read_s", "reading"), ("compute_s", "computing"), ("idle_s", "idle/waiting in the map"),
                        ("reduce_s", "reduction"), ("compile_s", "compile/warm-up")):
        col = np.asarray(r.get(name, []), dtype=float)
        if len(col):
            out.append(f"  {label:<24} {col.sum():10.3f} s | {col.max():.3f} s")
    if len(v.checkpoints):
        took = float((v.checkpoints[:, 1] - v.checkpoints[:, 0]).sum())
        out.append(f"  {'checkpoint writes':<24} {took:10.3f} s | rank 0, {len(v.checkpoints)} write(s)")
    steals = np.asarray(r.get("steals", []), dtype=int)
    if len(steals) and steals.sum():
        out.append(f"  stolen shards: {int(v.stolen.sum())} in {int(steals.sum())} steal(s) by "
                   f"{int((steals > 0).sum())} rank(s)")
    return out


def _stragglers(v: RunView) -> str:
    end = v.rank_end()
    ok = ~np.isnan(end)
    if ok.sum() < 2:
        return "stragglers: none (one rank mapped shards)"
    median = float(np.median(end[ok]))
    late_by = end - median
    limit = max(STRAGGLER_MIN_S, 0.1 * float(v.attrs.get("elapsed_s", 0.0)))
    late = [int(i) for i in np.argsort(-np.nan_to_num(late_by, nan=-np.inf)) if ok[i] and late_by[i] > limit][:5]
    if not late:
        return f"stragglers: none (every rank finished within {limit:.3f} s of the median, {median:.3f} s)"
    hosts = v.ranks.get("host")
    named = ", ".join(f"rank {i}" + (f" on {hosts[i]}" if hosts is not None and len(hosts) > i else "")
                      + f" +{late_by[i]:.3f} s" for i in late)
    return f"stragglers (finished their last shard later than the median rank, {median:.3f} s): {named}"


def _throughput(v: RunView) -> str:
    a = v.attrs
    shape = a.get("row_shape", [1])
    itemsize = np.dtype(str(a.get("dtype", "<f8"))).itemsize
    row_bytes = itemsize * int(np.prod(shape if isinstance(shape, (list, tuple)) else [shape]))
    mapped = v.mapped
    rows = _rows_read(v) if mapped.any() else 0
    elapsed = float(a.get("elapsed_s", 0.0)) or float("nan")
    gb = rows * row_bytes / 1e9
    return (f"throughput: {rows:,} rows read ({gb:.3f} GB over all passes) in {elapsed:.3f} s: "
            f"{rows / elapsed:,.0f} rows/s, {gb / elapsed:.3f} GB/s")


def _rows_read(v: RunView) -> int:
    total, shards, shard_rows = int(v.attrs.get("rows", 0)), int(v.attrs.get("shards", 1)), \
        int(v.attrs.get("shard_rows", 1))
    idx = v.shard[v.mapped]
    sizes = np.minimum(shard_rows, total - idx * shard_rows)        # the last shard may be short
    return int(np.clip(sizes, 0, None).sum()) if shards else 0
