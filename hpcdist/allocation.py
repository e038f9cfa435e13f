"""Facts about the batch allocation a run is in (today: Slurm's SLURM_* variables).

Read from the environment only, so the runtime can record them without depending on the Slurm
tooling in :mod:`hpcdist.slurm`, which builds on top of the runtime.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

# output attribute -> environment variable. Numbers are stored as integers, the rest as text.
SLURM_VARS = {
    "slurm_job_id": "SLURM_JOB_ID",
    "slurm_restart_count": "SLURM_RESTART_COUNT",
    "slurm_job_name": "SLURM_JOB_NAME",
    "slurm_cluster": "SLURM_CLUSTER_NAME",
    "slurm_partition": "SLURM_JOB_PARTITION",
    "slurm_nodelist": "SLURM_JOB_NODELIST",
    "slurm_job_num_nodes": "SLURM_JOB_NUM_NODES",
    "slurm_ntasks": "SLURM_NTASKS",
    "slurm_step_id": "SLURM_STEP_ID",
    "slurm_step_num_tasks": "SLURM_STEP_NUM_TASKS",
    "slurm_cpus_per_task": "SLURM_CPUS_PER_TASK",
    "slurm_mpi_type": "SLURM_MPI_TYPE",
    "slurm_array_job_id": "SLURM_ARRAY_JOB_ID",
    "slurm_array_task_id": "SLURM_ARRAY_TASK_ID",
}
_NUMERIC = {"slurm_job_id", "slurm_restart_count", "slurm_job_num_nodes", "slurm_ntasks", "slurm_step_id",
            "slurm_step_num_tasks", "slurm_cpus_per_task", "slurm_array_job_id", "slurm_array_task_id"}


def in_allocation(environ: Mapping[str, str] | None = None) -> bool:
    return bool((os.environ if environ is None else environ).get("SLURM_JOB_ID"))


def slurm_attrs(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The allocation's facts for the output attributes; empty outside Slurm.

    ``slurm_restart_count`` is always present inside an allocation (0 on the first run): Slurm sets
    ``SLURM_RESTART_COUNT`` only once a job has been requeued.
    """
    env = os.environ if environ is None else environ
    if not in_allocation(env):
        return {}
    attrs: dict[str, Any] = {"slurm_restart_count": 0}
    for attr, var in SLURM_VARS.items():
        value = env.get(var)
        if value is None or value == "":
            continue
        if attr in _NUMERIC:
            try:
                attrs[attr] = int(value)
                continue
            except ValueError:
                pass
        attrs[attr] = value
    return attrs
