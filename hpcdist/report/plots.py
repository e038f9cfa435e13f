"""The PNG half of ``hpcdist report`` (matplotlib, Agg: no display needed)."""

from __future__ import annotations

import os

import numpy as np

from hpcdist.errors import UserError
from hpcdist.report.data import RunView

BARS_UP_TO = 64         # ranks drawn as one timeline bar each; more: a heat map of busy time
HEAT_BINS = 200
COLORS = {"read": "#4C72B0", "compute": "#DD8452", "stolen": "#8172B3", "checkpoint": "#C44E52",
          "idle": "#E5E5E5", "resumed": "#222222"}


def write_pngs(v: RunView, out_dir: str) -> list[str]:
    """timeline.png, busy.png and shards.png in ``out_dir``; returns their paths."""
    plt = _pyplot()
    paths = []
    for name, draw in (("timeline.png", _timeline), ("busy.png", _busy), ("shards.png", _shards)):
        fig = draw(plt, v)
        path = os.path.join(out_dir, name)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UserError("hpcdist report needs matplotlib: pip install 'hpcdist[report]' (or matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _title(v: RunView, what: str) -> str:
    a = v.attrs
    return (f"{what}: {a.get('job', '?')} on {v.size} rank(s), {a.get('shards', '?')} shards, "
            f"{a.get('passes', '?')} pass(es), {a.get('elapsed_s', 0.0):.2f} s")


def _timeline(plt, v: RunView):
    if v.size > BARS_UP_TO:
        return _heat_map(plt, v)
    from matplotlib.patches import Patch

    height = max(2.5, 0.35 * v.size + 1.5)
    fig, ax = plt.subplots(figsize=(11, height))
    end = v.rank_end()
    start = np.full(v.size, np.nan)
    m = v.mapped
    np.fmin.at(start, v.rank[m], v.read_start[m])
    for r in range(v.size):                      # the map phase: idle/waiting unless a shard covers it
        if not np.isnan(end[r]):
            ax.broken_barh([(start[r], end[r] - start[r])], (r - 0.4, 0.8), color=COLORS["idle"])
    for r in range(v.size):
        mine = m & (v.rank == r)
        reads = np.column_stack([v.read_start[mine], v.read_end[mine] - v.read_start[mine]])
        ax.broken_barh(reads.tolist(), (r - 0.4, 0.8), color=COLORS["read"])
        for stolen, color in ((False, COLORS["compute"]), (True, COLORS["stolen"])):
            sel = mine & (v.stolen == stolen)
            spans = np.column_stack([v.read_end[sel], v.compute_end[sel] - v.read_end[sel]])
            ax.broken_barh(spans.tolist(), (r - 0.4, 0.8), color=color)
    if len(v.checkpoints):
        spans = np.column_stack([v.checkpoints[:, 0], v.checkpoints[:, 1] - v.checkpoints[:, 0]])
        ax.broken_barh(spans.tolist(), (-0.45, 0.9), facecolor="none", edgecolor=COLORS["checkpoint"], linewidth=1.5)
    for p in np.unique(v.pass_[m])[1:]:
        ax.axvline(float(v.read_start[m & (v.pass_ == p)].min()), color="black", linestyle=":", linewidth=0.8)
    ax.set_ylim(v.size - 0.5, -0.5)
    ax.set_yticks(range(v.size))
    ax.set_ylabel("rank")
    ax.set_xlabel("seconds since the run started (dotted: a new pass)")
    legend = [Patch(color=COLORS[k], label=t) for k, t in (("read", "reading"), ("compute", "computing"),
                                                           ("stolen", "computing a stolen shard"),
                                                           ("idle", "idle, waiting or between passes"))]
    if len(v.checkpoints):
        legend.append(Patch(facecolor="none", edgecolor=COLORS["checkpoint"], label="checkpoint write (rank 0)"))
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=len(legend), frameon=False)
    resumed = int(v.resumed.sum())
    ax.set_title(_title(v, "timeline") + (f"; {resumed} shards resumed from a checkpoint" if resumed else ""))
    return fig


def _heat_map(plt, v: RunView):
    """Rows: ranks; columns: time bins; colour: the fraction of the bin the rank spent reading or computing."""
    m = v.mapped
    t_end = float(np.nanmax(v.compute_end[m])) if m.any() else 1.0
    edges = np.linspace(0.0, t_end, HEAT_BINS + 1)
    busy = np.zeros((v.size, HEAT_BINS))
    s, e, rank = v.read_start[m], v.compute_end[m], v.rank[m]
    width = edges[1] - edges[0]
    for b in range(HEAT_BINS):                   # overlap of every shard with bin b, summed per rank
        overlap = np.clip(np.minimum(e, edges[b + 1]) - np.maximum(s, edges[b]), 0.0, None)
        np.add.at(busy[:, b], rank, overlap)
    fig, ax = plt.subplots(figsize=(11, 6))
    image = ax.imshow(np.clip(busy / width, 0, 1), aspect="auto", interpolation="nearest", cmap="viridis",
                      extent=(0.0, t_end, v.size - 0.5, -0.5), vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of time reading or computing")
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("rank")
    ax.set_title(_title(v, "busy time per rank"))
    return fig


def _busy(plt, v: RunView):
    r = v.ranks
    x = np.arange(v.size)
    parts = [("read_s", "reading", COLORS["read"]), ("compute_s", "computing", COLORS["compute"]),
             ("idle_s", "idle / waiting", "#B0B0B0"), ("reduce_s", "reduction", "#55A868")]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    bottom = np.zeros(v.size)
    for key, label, color in parts:
        h = np.asarray(r.get(key, np.zeros(v.size)), dtype=float)[: v.size]
        if v.size <= 256:
            ax.bar(x, h, bottom=bottom, color=color, label=label, width=0.8)
        else:
            ax.fill_between(x, bottom, bottom + h, color=color, label=label, step="mid", linewidth=0)
        bottom = bottom + h
    ax.set_xlabel("rank")
    ax.set_ylabel("seconds")
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title(_title(v, "busy and idle per rank"))
    if v.size <= 32:
        ax.set_xticks(x)
    return fig


def _shards(plt, v: RunView):
    """Which rank mapped each shard, per pass; resumed shards in black."""
    passes = int(v.pass_.max()) + 1 if len(v.pass_) else 1
    shards = int(v.attrs.get("shards", (v.shard.max() + 1) if len(v.shard) else 1))
    grid = np.full((passes, shards), np.nan)
    grid[v.pass_, v.shard] = v.rank
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.5 * passes))
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_under(COLORS["resumed"])
    image = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap=cmap, vmin=-0.5, vmax=v.size - 0.5, extent=(-0.5, shards - 0.5, passes - 0.5, -0.5))
    fig.colorbar(image, ax=ax, label="rank")
    ax.set_yticks(range(passes), [f"pass {p + 1}" for p in range(passes)])
    ax.set_xlabel("shard (row order)" + ("; black: resumed from the checkpoint" if v.resumed.any() else ""))
    ax.set_title(_title(v, "who mapped each shard"))
    return fig
