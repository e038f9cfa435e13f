"""Tables and plots from the JSON records of one or several runs (``hpcdist bench report DIR``).

Records of the same study (kind, job, params, problem size, schedule) are composed into one
table whatever launch they came from: e.g. one Slurm job per node count, each writing its record
into the same directory. When two records hold the same rank count, the newest one is used.

Outputs in DIR: ``summary.md`` (markdown tables), ``summary.csv`` (one row per point, one per
peer), and with matplotlib: ``speedup.png`` (strong: speedup vs ideal), ``efficiency.png``
(strong efficiency and weak T1/Tp), ``breakdown.png`` (time per phase at each rank count) and
``compare.png`` (peers). Without matplotlib the plots are skipped with a one-line note.
"""

from __future__ import annotations

import csv
import io
import json
import os
import textwrap
from typing import Any, Iterable, Mapping

from hpcdist.bench import records
from hpcdist.bench.metrics import scaling_table
from hpcdist.errors import UserError

CSV_FIELDS = [
    "kind", "study", "job", "ranks", "nodes", "ranks_per_node", "cores_per_node", "oversubscribed", "rows",
    "data_bytes", "passes", "time_min_s", "time_median_s", "time_max_s", "repeats", "read_s", "compute_s",
    "reduce_s", "checkpoint_s", "output_s", "other_s", "idle_max_s", "compile_s", "imbalance", "rows_per_s",
    "GBps", "speedup", "efficiency", "karp_flatt", "weak_efficiency", "excluded", "kernel_GBps_per_rank",
    "membw_read_per_rank_GBps", "membw_read_all_GBps", "kernel_fraction_of_membw", "allreduce_8B_us",
    "allreduce_algbw_GBps", "schedule", "hostnames", "git_commit", "date", "loadavg_1min", "disturbed", "foreign_cpu_s", "record",
]


def study_key(rec: Mapping[str, Any], pt: Mapping[str, Any]) -> tuple:
    data = rec["data"]
    size = (data.get("input") or pt["rows"]) if rec["kind"] == "strong" else data.get("rows_per_rank")
    return (rec["kind"], rec["job"], rec["params"], str(size), data.get("cols"), data.get("kind"),
            rec["options"].get("schedule"))


def study_label(key: tuple) -> str:
    kind, job, params, size, cols, data_kind, schedule = key
    shown = {k: v for k, v in json.loads(params).items() if v == v}   # NaN params = not given
    par = " ".join(f"{k}={v}" for k, v in sorted(shown.items()))
    try:
        size_text = f"{int(size):,}"
    except ValueError:
        size_text = size
    what = "rows" if kind == "strong" else "rows/rank"
    extra = f" x {cols} cols" if data_kind in ("h5", "synthetic") and cols else ""
    return f"{kind} {job} ({size_text} {what}{extra}{', ' + par if par else ''}, {data_kind}, schedule {schedule})"


def compose(recs: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Group the points of scaling records into studies (newest record per rank count) and
    collect the compare records. Returns {"studies": [...], "compares": [...]}."""
    chosen: dict[tuple, dict[int, tuple[str, Mapping, Mapping]]] = {}
    compares = []
    for path, rec in recs:
        if rec["kind"] == "compare":
            compares.append((path, rec))
            continue
        for pt in rec["points"]:
            key = study_key(rec, pt)
            slot = chosen.setdefault(key, {})
            old = slot.get(pt["ranks"])
            if old is None or rec["date"] >= old[1]["date"]:
                slot[pt["ranks"]] = (path, rec, pt)
    studies = []
    for key in sorted(chosen, key=lambda k: (k[0], k[1], k[3])):
        flat = []
        for ranks, (path, rec, pt) in sorted(chosen[key].items()):
            flat.append(_flat_point(key, path, rec, pt))
        table = scaling_table(key[0], flat)
        studies.append({"key": key, "label": study_label(key), "kind": key[0], "job": key[1], "points": table})
    return {"studies": studies, "compares": sorted(compares, key=lambda pr: pr[1]["date"])}


def _flat_point(key: tuple, path: str, rec: Mapping, pt: Mapping) -> dict[str, Any]:
    ph = pt["phases_s"]
    bw = pt.get("memory_bandwidth") or {}
    ar = pt.get("allreduce") or {}
    return {
        "kind": rec["kind"], "study": study_label(key), "job": rec["job"], "ranks": pt["ranks"],
        "nodes": pt["nodes"], "ranks_per_node": pt["ranks_per_node"], "cores_per_node": pt["cores_per_node"],
        "oversubscribed": pt["oversubscribed"], "rows": pt["rows"], "data_bytes": pt["data_bytes"],
        "passes": pt.get("passes", 1),
        "time_s": pt["time_s"]["median"], "time_min_s": pt["time_s"]["min"], "time_median_s": pt["time_s"]["median"],
        "time_max_s": pt["time_s"]["max"], "repeats": pt["time_s"]["n"],
        **{f"{k}_s": ph.get(k) for k in ("read", "compute", "reduce", "checkpoint", "output", "other")},
        "idle_max_s": ph.get("idle_max"), "compile_s": pt.get("compile_s"), "imbalance": pt.get("imbalance"),
        "rows_per_s": pt["rows_per_s"], "GBps": pt.get("GBps"), "kernel_GBps_per_rank": pt.get("kernel_GBps_per_rank"),
        "membw_read_per_rank_GBps": (bw.get("read") or {}).get("per_rank_GBps"),
        "membw_read_all_GBps": (bw.get("read") or {}).get("all_ranks_GBps"),
        "kernel_fraction_of_membw": pt.get("kernel_fraction_of_memory_bandwidth"),
        "allreduce_8B_us": ar.get("latency_8B_us"), "allreduce_algbw_GBps": ar.get("algbw_GBps"),
        "schedule": pt.get("schedule"), "hostnames": " ".join(pt["hostnames"]), "git_commit": rec.get("git_commit"),
        "date": rec["date"], "loadavg_1min": (rec.get("loadavg_start") or [None])[0], "record": os.path.basename(path),
        "disturbed": pt.get("disturbed"), "foreign_cpu_s": (pt.get("foreign_cpu_s") or {}).get("median"),
    }


# ---- text ---------------------------------------------------------------------------------------

def _f(value: Any, fmt: str = ".2f", none: str = "-") -> str:
    if value is None:
        return none
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, fmt)


def markdown(composed: Mapping[str, Any]) -> str:
    out: list[str] = []
    for st in composed["studies"]:
        strong = st["kind"] == "strong"
        out += [f"### {st['label']}", ""]
        head = ["ranks", "nodes", "time s median (min-max)", "speedup" if strong else "T1/Tp"]
        head += ["efficiency", "Karp-Flatt"] if strong else []
        head += ["rows/s", "GB/s", "read / compute / reduce / ckpt / output / other s", "imbalance",
                 "kernel GB/s per rank", "kernel / mem BW", "note"]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for p in st["points"]:
            note = "oversubscribed: excluded" if p["oversubscribed"] else (p["excluded"] or "")
            if p.get("disturbed"):
                note = "; ".join(filter(None, [note, f"disturbed (others used {_f(p['foreign_cpu_s'])} cpu-s)"]))
            row = [str(p["ranks"]), str(p["nodes"]),
                   f"{p['time_median_s']:.3f} ({p['time_min_s']:.3f}-{p['time_max_s']:.3f})",
                   _f(p["speedup"] if strong else p["weak_efficiency"])]
            if strong:
                row += [_f(p["efficiency"]), _f(p["karp_flatt"], ".3f")]
            phases = " / ".join(_f(p[f"{k}_s"], ".3f") for k in ("read", "compute", "reduce", "checkpoint",
                                                                 "output", "other"))
            row += [_f(p["rows_per_s"], ".3g"), _f(p["GBps"]), phases, _f(p["imbalance"], ".3f"),
                    _f(p["kernel_GBps_per_rank"]),
                    (f"{p['kernel_fraction_of_membw']:.2f} of {p['membw_read_per_rank_GBps']:.1f} GB/s"
                     if p["kernel_fraction_of_membw"] is not None else "-"), note]
            out.append("| " + " | ".join(row) + " |")
        last = st["points"][-1]
        out += ["", f"hosts {last['hostnames']}; commit {str(last['git_commit'])[:10]}; {last['date']}; "
                    f"1-min load at start {_f(last['loadavg_1min'])}; allreduce 8 B {_f(last['allreduce_8B_us'], '.1f')} us, "
                    f"{_f(last['allreduce_algbw_GBps'])} GB/s at {_fmt_bytes(2097152)}", ""]
    for path, rec in composed["compares"]:
        out += compare_markdown(rec, os.path.basename(path)) + [""]
    return "\n".join(out).rstrip() + "\n"


def _fmt_bytes(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def compare_markdown(rec: Mapping[str, Any], name: str = "") -> list[str]:
    data = rec["data"]
    out = [f"### compare {rec['job']}: {data.get('rows', 0):,} x {data.get('cols')} {data.get('dtype', '')} "
           f"({data.get('data_bytes', 0) / 1e9:.2f} GB), {rec['workers']} workers, {rec.get('repeat')} rounds"
           + (f" ({name})" if name else ""), "",
           "| peer | workers | time s median (min-max) | wall s median | GB/s | vs hpcdist (same workers) | status |",
           "|---|---|---|---|---|---|---|"]
    for peer, v in rec["peers"].items():
        if v["status"] != "ok":
            out.append(f"| {peer} | {v.get('workers', '-')} | - | - | - | - | {v['status']}: {v.get('reason', '')} |")
            continue
        t, wall = v["time_s"], v.get("wall_s")
        ratio = v.get("ratio_vs_hpcdist")
        out.append(f"| {peer} | {v['workers']} | {t['median']:.3f} ({t['min']:.3f}-{t['max']:.3f}) | "
                   f"{_f(wall['median'] if wall else None, '.3f')} | {_f(v.get('GBps'))} | "
                   f"{_f(ratio, '.2f') + 'x' if ratio is not None else '-'} | ok |")
    checks = rec.get("checks", {})
    out += ["", f"results cross-checked before timing: {'all equal' if checks.get('all_ok') else 'DISAGREE'} "
                f"(counts and histogram exact, floats within rtol {checks.get('rtol')}); host "
                f"{rec['machine'].get('hostname')}, {rec['machine'].get('cores')} cores; commit "
                f"{str(rec.get('git_commit'))[:10]}; {rec['date']}; 1-min load at start "
                f"{_f((rec.get('loadavg_start') or [None])[0])}"]
    if rec.get("memory_bandwidth"):
        bw = rec["memory_bandwidth"]["read"]
        out.append(f"memory bandwidth (read, STREAM-style): {bw['per_rank_GBps']:.1f} GB/s per rank, "
                   f"{bw['all_ranks_GBps']:.1f} GB/s all {rec['memory_bandwidth']['ranks']} ranks")
    return out


def csv_text(composed: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS + ["peer", "workers", "ratio_vs_hpcdist", "status"],
                       extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for st in composed["studies"]:
        for p in st["points"]:
            w.writerow({k: ("" if v is None else v) for k, v in p.items()})
    for path, rec in composed["compares"]:
        for peer, v in rec["peers"].items():
            t = v.get("time_s") or {}
            w.writerow({"kind": "compare", "job": rec["job"], "peer": peer, "workers": v.get("workers", ""),
                        "time_min_s": t.get("min", ""), "time_median_s": t.get("median", ""),
                        "time_max_s": t.get("max", ""), "repeats": t.get("n", ""), "GBps": v.get("GBps") or "",
                        "ratio_vs_hpcdist": v.get("ratio_vs_hpcdist") or "", "status": v["status"],
                        "data_bytes": rec["data"].get("data_bytes", ""), "rows": rec["data"].get("rows", ""),
                        "git_commit": rec.get("git_commit") or "", "date": rec["date"],
                        "hostnames": rec["machine"].get("hostname", ""), "record": os.path.basename(path)})
    return buf.getvalue()


# ---- plots --------------------------------------------------------------------------------------

def plots(composed: Mapping[str, Any], directory: str) -> tuple[list[str], str | None]:
    """PNG files written, and a note when matplotlib is missing (then nothing is written)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "plots skipped: matplotlib is not installed (pip install 'hpcdist[bench]')"
    written = []
    strong = [s for s in composed["studies"] if s["kind"] == "strong"]
    weak = [s for s in composed["studies"] if s["kind"] == "weak"]
    if strong:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        top = max(p["ranks"] for s in strong for p in s["points"])
        ax.plot([1, top], [1, top], "k--", lw=1, label="ideal")
        for s in strong:
            fair = [p for p in s["points"] if p["speedup"] is not None]
            line, = ax.plot([p["ranks"] for p in fair], [p["speedup"] for p in fair], "o-", label=_short(s))
            over = [p for p in s["points"] if p["oversubscribed"]]
            if over and fair:
                base = fair[0]
                ax.plot([p["ranks"] for p in over], [base["ranks"] * base["time_s"] / p["time_s"] for p in over], "x",
                        color=line.get_color(), ms=9, label="oversubscribed (excluded)")
        ax.set(xlabel="ranks", ylabel="speedup T1 / Tp", title="Strong scaling: speedup")
        _ranks_axis(ax, strong)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        written.append(_save(fig, directory, "speedup.png"))
    if strong or weak:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        ax.axhline(1.0, color="k", ls="--", lw=1, label="ideal")
        for s in strong:
            fair = [p for p in s["points"] if p["efficiency"] is not None]
            ax.plot([p["ranks"] for p in fair], [p["efficiency"] for p in fair], "o-", label="strong: " + _short(s))
        for s in weak:
            fair = [p for p in s["points"] if p["weak_efficiency"] is not None]
            ax.plot([p["ranks"] for p in fair], [p["weak_efficiency"] for p in fair], "s--",
                    label="weak T1/Tp: " + _short(s))
        ax.set(xlabel="ranks", ylabel="parallel efficiency", title="Efficiency (oversubscribed points excluded)",
               ylim=(0, 1.15))
        _ranks_axis(ax, strong + weak)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        written.append(_save(fig, directory, "efficiency.png"))
        studies = strong + weak
        fig, axes = plt.subplots(1, len(studies), figsize=(3.2 * len(studies) + 1.5, 4.2), squeeze=False)
        colors = {"read": "#4c72b0", "compute": "#55a868", "reduce": "#c44e52", "checkpoint": "#8172b2",
                  "output": "#ccb974", "other": "#999999"}
        for ax, s in zip(axes[0], studies):
            xs = [str(p["ranks"]) + ("*" if p["oversubscribed"] else "") for p in s["points"]]
            bottom = [0.0] * len(xs)
            for phase, color in colors.items():
                vals = [p[f"{phase}_s"] or 0.0 for p in s["points"]]
                ax.bar(xs, vals, bottom=bottom, color=color, label=phase)
                bottom = [b + v for b, v in zip(bottom, vals)]
            ax.set(xlabel="ranks (* oversubscribed)", ylabel="seconds (median)",
                   title=textwrap.fill(s["label"], 36))
            ax.title.set_fontsize(7)
        axes[0][-1].legend(fontsize=7)
        fig.suptitle("Time per phase (slowest rank's read, compute; other: the rest)", fontsize=9)
        written.append(_save(fig, directory, "breakdown.png"))
    for _, rec in composed["compares"][-1:]:
        ok = [(k, v) for k, v in rec["peers"].items() if v["status"] == "ok"]
        if ok:
            fig, ax = plt.subplots(figsize=(6.4, 4.0))
            names = [k for k, _ in ok]
            meds = [v["time_s"]["median"] for _, v in ok]
            lo = [m - v["time_s"]["min"] for m, (_, v) in zip(meds, ok)]
            hi = [v["time_s"]["max"] - m for m, (_, v) in zip(meds, ok)]
            ax.barh(names, meds, xerr=[lo, hi], color=["#55a868" if n.startswith("hpcdist") else "#999999"
                                                        for n in names])
            ax.invert_yaxis()
            ax.set(xlabel="seconds (median, min-max)", title=f"compare {rec['job']}: "
                   f"{rec['data'].get('data_bytes', 0) / 1e9:.2f} GB, {rec['workers']} workers")
            ax.grid(axis="x", alpha=0.3)
            written.append(_save(fig, directory, "compare.png"))
    plt.close("all")
    return written, None


def _short(study: Mapping, width: int = 60) -> str:
    label = study["label"]
    return label if len(label) <= width else label[: width - 3] + "..."


def _ranks_axis(ax, studies) -> None:
    ticks = sorted({p["ranks"] for s in studies for p in s["points"]})
    ax.set_xticks(ticks)


def _save(fig, directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


# ---- the command --------------------------------------------------------------------------------

def build(directory: str, say=print, write: bool = True) -> dict[str, Any]:
    """Read every record under ``directory``, write summary.md / summary.csv / plots there."""
    found = records.load_dir(directory)
    if not found:
        raise UserError(f"{directory}: no benchmark records (*.json with a schema field) found")
    composed = compose(found)
    text = markdown(composed)
    if write:
        with open(os.path.join(directory, "summary.md"), "w") as fh:
            fh.write(f"<!-- made by hpcdist bench report from {len(found)} record(s) -->\n\n{text}")
        with open(os.path.join(directory, "summary.csv"), "w") as fh:
            fh.write(csv_text(composed))
        written, note = plots(composed, directory)
        composed["plots"], composed["plot_note"] = written, note
        if note:
            say(f"hpcdist bench: {note}")
    composed["markdown"] = text
    composed["records"] = [p for p, _ in found]
    return composed
