"""hpcdist on a real Slurm: the batch scripts of slurm/ submitted to a single-node cluster on this machine.

The cluster comes from ``bash slurm/local-cluster.sh start`` (CI runs it before pytest; the fixture
runs it too, and leaves the cluster up for the next session; ``... stop`` ends it). That needs root
(apt-get, daemons as SlurmUser=root): without root these tests skip and say so.

The walltime test runs in the background from the start of this module (a job that must outlive
Slurm's 30-second signal check), while the others run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import JOBS, ROOT, assert_same_bits, launch_env, read_h5, run_ok

CLUSTER = ROOT / "slurm" / "local-cluster.sh"
HPCDIST = str(Path(sys.executable).with_name("hpcdist"))
STATS = str(JOBS / "stats.py")
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
            "BOOT_FAIL", "DEADLINE"}

pytestmark = pytest.mark.timeout(150)

# A job slow enough to be interrupted (it sleeps in every shard) whose result depends on the order
# of every combine, so a resumed run that folded anything differently would not match bit for bit.
SLOW_JOB = '''
import time
import numpy as np
from hpcdist import Param

PARAMS = {"sleep": Param(float, 0.25, "seconds each shard takes")}

def default_input(params):
    return "synthetic:rows=40000,cols=2,seed=9"

def map(shard, ctx):
    time.sleep(ctx.params["sleep"])
    return {"x": shard.sum(axis=0) + np.sin(ctx.index), "n": np.asarray(len(shard))}

def combine(a, b):
    return {"x": a["x"] * 1.0000001 + b["x"], "n": a["n"] + b["n"]}

def finalize(partial, ctx):
    return {"x": partial["x"], "n": partial["n"]}
'''


class Slurm:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, *cmd: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=self.env, cwd=cwd)
        if check:
            assert proc.returncode == 0, f"{' '.join(cmd)}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
        return proc

    def sbatch(self, script: Path, *options: str, env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(["sbatch", "--parsable", *options, str(script)], capture_output=True, text=True,
                              timeout=60, env={**self.env, **(env or {})}, cwd=script.parent)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().split(";")[0]

    def submit(self, *args: str, cwd: Path) -> str:
        """``hpcdist slurm submit``: render and sbatch in one go; it prints the job id."""
        proc = subprocess.run([HPCDIST, "slurm", "submit", *args, "--hpcdist", HPCDIST], capture_output=True,
                              text=True, timeout=60, env=self.env, cwd=cwd)
        assert proc.returncode == 0 and proc.stdout.strip().isdigit(), proc.stderr
        return proc.stdout.strip()

    def jobs(self, job_id: str) -> list[dict[str, str]]:
        """``scontrol show job -o``: one dict per job (an array job gives one per task)."""
        proc = self.run("scontrol", "show", "job", "-o", job_id)
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in proc.stdout.splitlines() if line.strip()]

    def job(self, job_id: str) -> dict[str, str]:
        return self.jobs(job_id)[0]

    def wait(self, job_id: str, timeout: float = 90) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs(job_id)
            if jobs and all(j["JobState"] in TERMINAL for j in jobs):
                return jobs
            assert time.monotonic() < deadline, f"job {job_id} still {[j['JobState'] for j in jobs]}"
            time.sleep(0.5)

    def wait_until(self, what, timeout: float = 60, every: float = 0.25):
        deadline = time.monotonic() + timeout
        while not (value := what()):
            assert time.monotonic() < deadline, f"timed out waiting for {what.__doc__ or what}"
            time.sleep(every)
        return value


@pytest.fixture(scope="module")
def slurm() -> Slurm:
    if os.geteuid() != 0:
        pytest.skip("needs root: slurm/local-cluster.sh installs Slurm with apt-get and runs slurmctld/slurmd "
                    "as root (CI runs as root and runs these tests)")
    started = time.monotonic()
    proc = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"slurm/local-cluster.sh start failed:\n{proc.stderr}"
    sys.stderr.write(f"\n[local Slurm ready in {time.monotonic() - started:.1f} s] ")
    conf = subprocess.run(["bash", str(CLUSTER), "env"], capture_output=True, text=True, timeout=10)
    env = launch_env()
    env["SLURM_CONF"] = conf.stdout.strip().split("=", 1)[1]
    env["PATH"] = f"{Path(HPCDIST).parent}{os.pathsep}{env.get('PATH', '')}"
    return Slurm(env)


def log_of(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def attrs_of(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return dict(f.attrs)


def write_slow_job(d: Path) -> Path:
    path = d / "slow.py"
    path.write_text(SLOW_JOB)
    return path


def reference(job: Path, *args: str, tmp: Path) -> dict[str, np.ndarray]:
    """The same job on one rank, without Slurm."""
    out = tmp / f"reference-{time.monotonic_ns()}.h5"
    run_ok("run", str(job), *args, "--output", str(out))
    return read_h5(out)


# ---- the walltime job: submitted first, checked last -------------------------------------------------

class Background:
    job_id = ""
    error: BaseException | None = None


@pytest.fixture(scope="module", autouse=True)
def walltime_job(request, tmp_path_factory):
    """requeue.sbatch with --time 00:01:00 and --signal B:USR1@30: Slurm checks time limits every
    30 s and, this close to the limit, signals at its first check, so the first run is told to stop
    within 30 s while its work takes ~40 s. After the requeue a watcher raises the time limit, so
    that the second run, which resumes, is not signalled again and the test sees exactly one restart.
    """
    slurm = request.getfixturevalue("slurm")  # skips every test here when not root
    d = tmp_path_factory.mktemp("walltime")
    job = write_slow_job(d)
    state = Background()
    state.job_id = slurm.submit(
        str(job), "--template", "requeue", "--ntasks-per-node", "2", "--time", "00:01:00", "--signal", "30",
        "--input", "synthetic:rows=72000,cols=2,seed=4", "--shard-rows", "500", "--param", "sleep=0.5",
        "--output", str(d / "out.h5"), "--checkpoint", str(d / "run.ckpt.h5"), "--checkpoint-every", "1",
        "--log", str(d / "job-%j.log"), "--script", str(d / "requeue.sbatch"), cwd=d)
    done = threading.Event()

    def watch():
        try:
            while not done.is_set():
                info = slurm.job(state.job_id)
                if int(info.get("Restarts", "0")) >= 1:
                    slurm.run("scontrol", "update", f"JobId={state.job_id}", "TimeLimit=00:05:00")
                    return
                if info["JobState"] in TERMINAL:
                    return
                time.sleep(0.25)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            state.error = exc

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    yield state, d, job
    done.set()
    watcher.join(timeout=5)
    slurm.run("scancel", state.job_id, check=False)


# ---- (1) run.sbatch ----------------------------------------------------------------------------------

def test_run_sbatch_on_2_tasks_equals_mpiexec_bit_for_bit(slurm, small_h5, tmp_path):
    """The shipped slurm/run.sbatch, as is: values through HPCDIST_* and sbatch options."""
    script = tmp_path / "run.sbatch"
    script.write_text((ROOT / "slurm" / "run.sbatch").read_text())
    spec = f"{small_h5}:/grp/x"
    job_id = slurm.sbatch(script, "--ntasks-per-node=2", f"--output={tmp_path}/run-%j.log", env={
        "HPCDIST": HPCDIST, "HPCDIST_JOB": STATS, "HPCDIST_INPUT": spec,
        "HPCDIST_OUTPUT": str(tmp_path / "slurm.h5"), "HPCDIST_ARGS": "--shard-rows 700"})
    run_ok("run", STATS, "--input", spec, "--output", str(tmp_path / "mpiexec.h5"), "--shard-rows", "700", ranks=2)
    (info,) = slurm.wait(job_id)
    log = log_of(tmp_path / f"run-{job_id}.log")
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log
    assert_same_bits(read_h5(tmp_path / "mpiexec.h5"), read_h5(tmp_path / "slurm.h5"))
    a = attrs_of(tmp_path / "slurm.h5")
    assert a["ranks"] == 2 and a["slurm_job_id"] == int(job_id) and a["slurm_ntasks"] == 2
    assert a["slurm_restart_count"] == 0 and a["slurm_mpi_type"] == "pmi2"
    assert f"run.sbatch: job {job_id}: 2 task(s) on " in log and "on 2 rank(s)" in log


# ---- a rendered script, submitted from another directory ----------------------------------------------

def test_a_script_rendered_in_one_directory_runs_when_submitted_from_another(slurm, small_h5, tmp_path):
    """Every path in it was typed relative to where it was rendered; sbatch runs elsewhere."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "jobs").mkdir(parents=True)
    elsewhere.mkdir()
    (project / "jobs" / "stats.py").write_text(Path(STATS).read_text())
    (project / "data").mkdir()
    (project / "data" / "small.h5").write_bytes(small_h5.read_bytes())
    proc = subprocess.run([HPCDIST, "slurm", "render", "jobs/stats.py", "--ntasks-per-node", "2",
                           "--time", "00:05:00", "--input", "data/small.h5:/grp/x", "--output", "out.h5",
                           "--shard-rows", "700"],
                          capture_output=True, text=True, timeout=60, env=slurm.env, cwd=project)
    assert proc.returncode == 0, proc.stderr
    script = project / "run.sbatch"
    script.write_text(proc.stdout)
    submitted = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True,
                               timeout=60, env=slurm.env, cwd=elsewhere)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]
    (info,) = slurm.wait(job_id)
    log = log_of(elsewhere / f"hpcdist-stats-{job_id}.out")    # the log goes where sbatch ran
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log
    assert_same_bits(reference(Path(STATS), "--input", f"{small_h5}:/grp/x", "--shard-rows", "700", tmp=tmp_path),
                     read_h5(project / "out.h5"))
    assert attrs_of(project / "out.h5")["ranks"] == 2 and not (elsewhere / "out.h5").exists()


# ---- (3) array-sweep.sbatch --------------------------------------------------------------------------

def test_array_sweep_over_3_inputs_gives_3_correct_outputs(slurm, tmp_path):
    rng = np.random.default_rng(3)
    lines = []
    for i, shape in enumerate([(5_000,), (7_001, 2), (3_333, 3)]):
        np.save(tmp_path / f"in{i}.npy", rng.normal(i, 1.0 + i, size=shape))
        lines.append(f"--input {tmp_path}/in{i}.npy" + (" --param bins=16" if i == 2 else ""))
    (tmp_path / "sweep.txt").write_text("\n".join(lines) + "\n")
    job_id = slurm.submit(STATS, "--template", "array", "--sweep", "sweep.txt", "--output", "out-%a.h5",
                          "--ntasks-per-node", "1", "--time", "00:05:00", "--log", "arr-%A_%a.log", cwd=tmp_path)
    tasks = slurm.wait(job_id)
    logs = "".join(log_of(tmp_path / f"arr-{job_id}_{i}.log") for i in range(3))
    assert sorted(t["ArrayTaskId"] for t in tasks) == ["0", "1", "2"], tasks
    assert all(t["JobState"] == "COMPLETED" and t["ExitCode"] == "0:0" for t in tasks), logs
    for i, line in enumerate(lines):
        out = tmp_path / f"out-{i}.h5"
        assert_same_bits(reference(Path(STATS), *line.split(), tmp=tmp_path), read_h5(out))
        a = attrs_of(out)
        assert a["slurm_array_task_id"] == i and a["slurm_array_job_id"] == int(job_id)
    assert "bins" in attrs_of(tmp_path / "out-2.h5")["params"] and read_h5(tmp_path / "out-2.h5")["hist"].shape == (3, 16)


# ---- (4) a wrong set-up is one clear line in the job's log -------------------------------------------

def test_wrong_mpi_plugin_unwritable_output_and_missing_mpi4py_fail_clearly(slurm, tmp_path):
    script = tmp_path / "run.sbatch"
    script.write_text((ROOT / "slurm" / "run.sbatch").read_text())
    hidden = tmp_path / "no-mpi4py" / "mpi4py"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("No module named \'mpi4py\'")\n')
    base = {"HPCDIST": HPCDIST, "HPCDIST_JOB": STATS, "HPCDIST_INPUT": "synthetic:rows=20000,cols=2,seed=1"}
    cases = {
        "plugin": ({"HPCDIST_MPI": "none", "HPCDIST_OUTPUT": str(tmp_path / "plugin.h5")},
                   "hpcdist: error: srun started 2 tasks (--mpi=none) but MPI sees a world of 1 rank in each"),
        "output": ({"HPCDIST_OUTPUT": "/sys/hpcdist-out.h5"},
                   "hpcdist: error: output /sys/hpcdist-out.h5: directory /sys is not writable"),
        "mpi4py": ({"PYTHONPATH": str(hidden.parent), "HPCDIST_OUTPUT": str(tmp_path / "mpi4py.h5")},
                   "hpcdist: error: cannot import mpi4py on "),
    }
    ids = {name: slurm.sbatch(script, "--ntasks-per-node=2", f"--output={tmp_path}/{name}.log",
                              env={**base, **extra}) for name, (extra, _) in cases.items()}
    for name, (_, message) in cases.items():
        (info,) = slurm.wait(ids[name])
        log = log_of(tmp_path / f"{name}.log")
        assert info["JobState"] == "FAILED" and info["ExitCode"] == "2:0", f"{name}: {info['JobState']}\n{log}"
        errors = [line for line in log.splitlines() if line.startswith("hpcdist: error:")]
        assert len(errors) == 1 and errors[0].startswith(message), f"{name}:\n{log}"
        assert "Traceback" not in log and " rows in " not in log, f"{name}:\n{log}"
    assert not (tmp_path / "plugin.h5").exists() and not (tmp_path / "mpi4py.h5").exists()
    assert "is not writable" in log_of(tmp_path / "output.log")


# ---- scaling.sbatch ----------------------------------------------------------------------------------

def test_scaling_sbatch_runs_every_point_and_strong_points_agree(slurm, tmp_path):
    script = tmp_path / "scaling.sbatch"
    script.write_text((ROOT / "slurm" / "scaling.sbatch").read_text())
    job_id = slurm.sbatch(script, "--ntasks-per-node=2", "--exclusive=user", f"--output={tmp_path}/scaling.log",
                          env={"HPCDIST": HPCDIST, "HPCDIST_JOB": STATS, "HPCDIST_ROWS": "30000",
                               "HPCDIST_ROWS_PER_RANK": "10000", "HPCDIST_OUT_DIR": str(tmp_path / "points")})
    (info,) = slurm.wait(job_id)
    log = log_of(tmp_path / "scaling.log")
    assert info["JobState"] == "COMPLETED", log
    points = tmp_path / "points"
    assert sorted(p.name for p in points.iterdir()) == ["strong-p1.h5", "strong-p2.h5", "weak-p1.h5", "weak-p2.h5"]
    assert_same_bits(read_h5(points / "strong-p1.h5"), read_h5(points / "strong-p2.h5"))
    assert [attrs_of(points / f"weak-p{p}.h5")["rows"] for p in (1, 2)] == [10000, 20000]
    assert [attrs_of(points / f"strong-p{p}.h5")["ranks"] for p in (1, 2)] == [1, 2]
    for name in ("strong-p1", "strong-p2", "weak-p1", "weak-p2"):
        assert f"{points}/{name}.h5: job stats on synthetic:" in log, log
    assert f"scaling.sbatch: job {job_id}: done" in log


# ---- (2) requeue.sbatch ------------------------------------------------------------------------------

def submit_slow(slurm: Slurm, d: Path, *extra: str, shards_sleep: str = "0.25") -> str:
    job = write_slow_job(d)
    return slurm.submit(str(job), "--template", "requeue", "--ntasks-per-node", "2", "--time", "00:05:00",
                        "--shard-rows", "500", "--param", f"sleep={shards_sleep}", "--output", str(d / "out.h5"),
                        "--checkpoint", str(d / "run.ckpt.h5"), "--checkpoint-every", "1",
                        "--log", str(d / "job-%j.log"), "--script", str(d / "requeue.sbatch"), *extra, cwd=d)


def checkpointed(slurm: Slurm, job_id: str, d: Path):
    def ready():
        """a running job with a checkpoint on disk"""
        return slurm.job(job_id)["JobState"] == "RUNNING" and (d / "run.ckpt.h5").exists()
    slurm.wait_until(ready, timeout=60)
    time.sleep(1.5)  # a few more shards, so that a resume has something to skip


def test_forced_scontrol_requeue_mid_run_resumes_bit_identical(slurm, tmp_path):
    job_id = submit_slow(slurm, tmp_path)
    checkpointed(slurm, job_id, tmp_path)
    slurm.run("scontrol", "requeue", job_id)
    (info,) = slurm.wait(job_id, timeout=100)
    log = log_of(tmp_path / f"job-{job_id}.log")
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", log
    a = attrs_of(tmp_path / "out.h5")
    assert a["slurm_restart_count"] == 1 and a["shards_resumed"] > 0, log
    assert_same_bits(reference(tmp_path / "slow.py", "--shard-rows", "500", "--param", "sleep=0", tmp=tmp_path),
                     read_h5(tmp_path / "out.h5"))
    assert "got SIGTERM" in log and "exit 75" in log
    assert f"hpcdist: slurm job {job_id} restart 1 (SLURM_RESTART_COUNT=1)" in log
    assert "run 2 (SLURM_RESTART_COUNT=1)" in log and "hpcdist: resuming from" in log
    assert not (tmp_path / "run.ckpt.h5").exists()  # a finished run removes its checkpoint


def test_hard_scancel_then_manual_resubmission_resumes_bit_identical(slurm, tmp_path):
    first = submit_slow(slurm, tmp_path)
    checkpointed(slurm, first, tmp_path)
    slurm.run("scancel", "--full", "--signal=KILL", first)   # no chance to checkpoint: the periodic one counts
    (info,) = slurm.wait(first)
    assert info["JobState"] in {"CANCELLED", "FAILED"} and not (tmp_path / "out.h5").exists()
    second = slurm.sbatch(tmp_path / "requeue.sbatch")    # the user submits the same script again
    (info,) = slurm.wait(second)
    log = log_of(tmp_path / f"job-{second}.log")
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "0", log
    a = attrs_of(tmp_path / "out.h5")
    assert a["shards_resumed"] > 0 and a["slurm_job_id"] == int(second) and a["slurm_restart_count"] == 0, log
    assert "hpcdist: resuming from" in log
    assert_same_bits(reference(tmp_path / "slow.py", "--shard-rows", "500", "--param", "sleep=0", tmp=tmp_path),
                     read_h5(tmp_path / "out.h5"))


def test_requeues_stop_at_the_cap(slurm, tmp_path):
    """USR1 to the batch shell, as --signal=B:USR1 sends it; with --max-requeues 0 the job stops at 75."""
    job_id = submit_slow(slurm, tmp_path, "--max-requeues", "0")
    checkpointed(slurm, job_id, tmp_path)
    slurm.run("scancel", "--batch", "--signal=USR1", job_id)
    (info,) = slurm.wait(job_id)
    log = log_of(tmp_path / f"job-{job_id}.log")
    assert info["JobState"] == "FAILED" and info["ExitCode"] == "75:0" and info["Restarts"] == "0", log
    assert "got SIGUSR1" in log and "requeued 0 times already (HPCDIST_MAX_REQUEUES): giving up" in log
    assert (tmp_path / "run.ckpt.h5").exists() and not (tmp_path / "out.h5").exists()


def test_walltime_signal_checkpoints_requeues_and_resumes_bit_identical(slurm, walltime_job):
    state, d, job = walltime_job
    (info,) = slurm.wait(state.job_id, timeout=140)
    assert state.error is None, state.error
    log = log_of(d / f"job-{state.job_id}.log")
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", f"{info}\n{log}"
    assert "got SIGUSR1 (time limit near or preemption)" in log
    assert "checkpointed: requeueing myself (restart 1 of at most 5)" in log
    assert f"hpcdist: slurm job {state.job_id} restart 1 (SLURM_RESTART_COUNT=1)" in log
    a = attrs_of(d / "out.h5")
    assert a["slurm_restart_count"] == 1 and a["shards"] == 144
    assert_same_bits(reference(job, "--input", "synthetic:rows=72000,cols=2,seed=4", "--shard-rows", "500",
                               "--param", "sleep=0", tmp=d), read_h5(d / "out.h5"))
