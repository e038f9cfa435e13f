"""``sbatch --parsable``: submit a rendered script, get the job id back."""

from __future__ import annotations

import shutil
import subprocess

from hpcdist.errors import UserError

SBATCH_TIMEOUT_S = 60


def sbatch_command(script_path: str | None = None) -> list[str]:
    """The command that submits: the script from a file, or (no path) from standard input."""
    return ["sbatch", "--parsable"] + ([script_path] if script_path else [])


def submit(script: str, script_path: str | None = None) -> str:
    """Submit ``script`` (already written to ``script_path`` when given) and return the job id."""
    exe = shutil.which("sbatch")
    if exe is None:
        raise UserError("sbatch not found: submit on a Slurm login node (for a Slurm on this machine: "
                        "bash slurm/local-cluster.sh start)")
    cmd = [exe, *sbatch_command(script_path)[1:]]
    try:
        proc = subprocess.run(cmd, input=None if script_path else script, capture_output=True, text=True,
                              timeout=SBATCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise UserError(f"sbatch did not answer in {SBATCH_TIMEOUT_S} s: is slurmctld up? (scontrol ping)") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        raise UserError(f"sbatch refused the job: {lines[-1] if lines else f'exit {proc.returncode}'}")
    job_id = proc.stdout.strip().split(";")[0]  # --parsable: "id" or "id;cluster"
    if not job_id.isdigit():
        raise UserError(f"sbatch answered {proc.stdout.strip()!r}, not a job id")
    return job_id
