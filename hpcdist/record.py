"""What a result file says about the run that made it: the output attributes, from named records."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

import hpcdist
from hpcdist.allocation import slurm_attrs
from hpcdist.comm import mpi_library
from hpcdist.job import Job
from hpcdist.params import params_json
from hpcdist.shards import ShardPlan
from hpcdist.sources import Source
from hpcdist.timings import RankTimings


@dataclass(frozen=True)
class RunFacts:
    """What is known before the first shard: the job, its params, the data, the plan, the world."""

    job: Job
    params: Mapping[str, Any]
    source: Source
    plan: ShardPlan
    ranks: int
    nodes: int


@dataclass(frozen=True)
class RunOutcome:
    """What is known at the end (rank 0): passes, every rank's timings, resumed shards, checkpoint cost."""

    passes: int
    timings: list[RankTimings]
    elapsed_s: float
    shards_resumed: int
    checkpoint_s: float = 0.0
    checkpoints: int = 0


@dataclass
class RunReport:
    """What a run did. ``results`` and ``attrs`` are filled on rank 0 only."""

    results: dict[str, np.ndarray] | None
    attrs: dict[str, Any]
    shards_here: int


def run_attributes(facts: RunFacts, outcome: RunOutcome) -> dict[str, Any]:
    """The output file's attributes (also ``RunReport.attrs``)."""
    job, source, plan, timings = facts.job, facts.source, facts.plan, outcome.timings
    return {
        "job": job.name,
        "job_path": job.path,
        "job_sha256": job.source_sha256,
        "params": params_json(facts.params),
        "input": source.spec,
        "rows": source.rows,
        "row_shape": list(source.row_shape) or [1],
        "dtype": source.dtype.str,
        "stored_dtype": source.stored_dtype.str,   # as in the file; "conversion" says how it became dtype
        "conversion": source.conversion,
        "shards": plan.shards,
        "shard_rows": plan.shard_rows,
        "ranks": facts.ranks,
        "nodes": facts.nodes,
        "passes": outcome.passes,
        "elapsed_s": outcome.elapsed_s,
        "compile_s": max(t.compile_s for t in timings),
        "read_s": max(t.read_s for t in timings),
        "compute_s": max(t.compute_s for t in timings),
        "reduce_s": max(t.reduce_s for t in timings),
        "checkpoint_s": outcome.checkpoint_s,
        "checkpoints": outcome.checkpoints,
        "shards_resumed": outcome.shards_resumed,
        "shards_computed": sum(t.shards for t in timings),
        "rank_shards": [int(t.shards) for t in timings],
        "rank_busy_s": [t.busy_s for t in timings],
        "rank_idle_s": [float(t.idle_s) for t in timings],
        "rank_claims": [int(t.claims) for t in timings],
        "rank_steals": [int(t.steals) for t in timings],
        "schedule": str(timings[0].schedule),
        "hostname": socket.gethostname(),
        "mpi": mpi_library(),
        "python": sys.version.split()[0],
        "hpcdist_version": hpcdist.__version__,
        **slurm_attrs(),  # SLURM_JOB_ID, SLURM_RESTART_COUNT, ... inside an allocation, else nothing
    }
