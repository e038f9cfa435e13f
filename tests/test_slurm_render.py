"""Slurm without a Slurm: rendered batch scripts pinned by golden files, option checking, SLURM_* facts.

Golden files live in tests/golden/slurm/. After a deliberate template change, rewrite them with
``HPCDIST_UPDATE_GOLDEN=1 python -m pytest tests/test_slurm_render.py`` and read the diff.
The shipped slurm/*.sbatch scripts carry the command that made them (``# Made by:``); they are
checked the same way, so the templates and the scripts users copy never drift apart.
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpcdist.cli import main
from hpcdist import allocation, startup as slurm_env
from hpcdist.slurm import render as render_module

from conftest import JOBS, ROOT

GOLDEN = ROOT / "tests" / "golden" / "slurm"
UPDATE = os.environ.get("HPCDIST_UPDATE_GOLDEN") == "1"
# Rendered scripts hold absolute paths. Golden files and the shipped scripts are rendered in the
# checkout with hpcdist at .venv/bin/hpcdist, and show the checkout as this placeholder, so they
# are the same on every machine (and in a shipped script, plainly a path to edit).
CHECKOUT = "/path/to/hpcdist"

pytestmark = pytest.mark.timeout(60)

CASES = {
    "run-defaults": ["jobs/stats.py", "--time", "00:10:00"],
    "run-everything": [
        "jobs/stats.py", "--nodes", "8", "--ntasks-per-node", "32", "--cpus-per-task", "2",
        "--time", "1-12:00:00", "--input", "/scratch/big data.h5:/particles/energy", "--output", "out.h5",
        "--checkpoint", "/scratch/run.ckpt.h5", "--checkpoint-every", "600", "--param", "bins=128",
        "--param", "lo=-5", "--param", "hi=5", "--shard-rows", "1_000_000", "--partition", "batch",
        "--account", "proj42", "--job-name", "energy-stats", "--mpi", "pmix", "--log", "logs/%x-%j.log",
        "--hpcdist", "/opt/venvs/hpcdist/bin/hpcdist"],
    "requeue": [
        "jobs/stats.py", "--template", "requeue", "--input", "/scratch/big.h5:/x", "--output", "out.h5",
        "--nodes", "8", "--ntasks-per-node", "32", "--time", "02:00:00", "--checkpoint", "/scratch/run.ckpt.h5",
        "--signal", "300", "--max-requeues", "3"],
    "array": [
        "jobs/stats.py", "--template", "array", "--sweep", "tests/golden/slurm/sweep.txt",
        "--output", "/scratch/out/stats-%a.h5", "--checkpoint", "/scratch/ckpt/stats-%a.ckpt.h5",
        "--ntasks-per-node", "4", "--time", "00:30:00", "--param", "bins=32"],
}
SHIPPED = ["run.sbatch", "requeue.sbatch", "array-sweep.sbatch"]


def in_checkout(monkeypatch):
    """Render as if in the checkout, with hpcdist installed in its .venv (whatever this machine has)."""
    monkeypatch.chdir(ROOT)
    real = render_module.installed_hpcdist
    monkeypatch.setattr(render_module, "installed_hpcdist",
                        lambda command, cwd: str(ROOT / ".venv" / "bin" / "hpcdist") if command == "hpcdist"
                        else real(command, cwd))


def render(args, capsys, monkeypatch):
    in_checkout(monkeypatch)
    code = main(["slurm", "render", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out.replace(str(ROOT), CHECKOUT)


def check_golden(path, text):
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with HPCDIST_UPDATE_GOLDEN=1 to write it"
    assert text == path.read_text(), f"{path.name} differs: re-render with HPCDIST_UPDATE_GOLDEN=1 if deliberate"


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_script_matches_golden_file(case, capsys, monkeypatch):
    check_golden(GOLDEN / f"{case}.sbatch", render(CASES[case], capsys, monkeypatch))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_script_is_its_template_rendered(name, capsys, monkeypatch):
    shipped = ROOT / "slurm" / name
    made_by = next(line for line in shipped.read_text().splitlines() if line.startswith("# Made by: "))
    words = shlex.split(made_by.removeprefix("# Made by: "))
    assert words[:3] == ["hpcdist", "slurm", "render"]
    check_golden(shipped, render(words[3:], capsys, monkeypatch))


@pytest.mark.parametrize("case", sorted(CASES))
def test_made_by_line_renders_the_same_script(case, capsys, monkeypatch):
    text = render(CASES[case], capsys, monkeypatch)
    made_by = next(line for line in text.splitlines() if line.startswith("# Made by: "))
    assert render(shlex.split(made_by.removeprefix("# Made by: "))[3:], capsys, monkeypatch) == text


def test_every_script_is_valid_bash():
    scripts = sorted(GOLDEN.glob("*.sbatch")) + sorted((ROOT / "slurm").glob("*.sbatch"))
    assert len(scripts) >= 8
    for path in scripts:
        proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=10)
        assert proc.returncode == 0, f"{path}: {proc.stderr}"


def test_values_are_shell_quoted_and_sbatch_lines_come_first(capsys, monkeypatch):
    text = render(CASES["run-everything"], capsys, monkeypatch)
    assert "HPCDIST_INPUT=${HPCDIST_INPUT-'/scratch/big data.h5:/particles/energy'}" in text
    assert "HPCDIST_MPI=${HPCDIST_MPI:-pmix}" in text
    lines = text.splitlines()
    first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    assert all(i < first_command for i, line in enumerate(lines) if line.startswith("#SBATCH"))
    assert "#SBATCH --ntasks-per-node=32" in text and "#SBATCH --account=proj42" in text
    # the user's value reaches the job as one word, spaces and all
    script = text.replace("srun ", "printf '<%s>' ").replace("command -v \"$HPCDIST\"", "true")
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=10,
                          env={"PATH": os.environ["PATH"]})
    assert "</scratch/big data.h5:/particles/energy>" in proc.stdout, proc.stdout + proc.stderr


# ---- a script runs the same from any directory -----------------------------------------------------

def srun_words(script: str, cwd: Path) -> list[str]:
    """What the script would hand to srun, running it with bash (no Slurm) from ``cwd``."""
    fake = script.replace('srun --mpi="$HPCDIST_MPI" ', "printf '%s\\n' ").replace('command -v "$HPCDIST"', "true")
    fake = fake.replace("srun --mpi=none ", "true ")     # the per-node steps before the run (compile)
    proc = subprocess.run(["bash", "-c", fake], capture_output=True, text=True, timeout=10, cwd=cwd,
                          env={"PATH": os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.parametrize("sig", ["USR1", "TERM"])
def test_a_signal_while_the_run_is_prepared_neither_ends_the_script_nor_starts_the_run(sig, capsys, monkeypatch):
    """Slurm's USR1 (--signal B:) may come during the compile step; bash's default would end the
    script and fail the job. USR1 requeues without starting the run; TERM exits 75."""
    text = render(CASES["requeue"], capsys, monkeypatch)
    fake = (text.replace("srun --mpi=none ", f"kill -{sig} $$; true ")      # the signal arrives here
            .replace('srun --mpi="$HPCDIST_MPI" ', "echo RUN-STARTED ")
            .replace('command -v "$HPCDIST"', "true").replace("scontrol requeue", "echo REQUEUED"))
    proc = subprocess.run(["bash", "-c", fake], capture_output=True, text=True, timeout=10,
                          env={"PATH": os.environ["PATH"], "SLURM_JOB_ID": "7"})
    assert f"SIG{sig} came before the run started: not starting it" in proc.stderr, proc.stderr
    assert "RUN-STARTED" not in proc.stdout
    if sig == "USR1":
        assert proc.returncode == 0 and "REQUEUED" in proc.stdout
        assert "checkpointed: requeueing myself (restart 1 of at most 3)" in proc.stderr
    else:
        assert proc.returncode == 75 and "REQUEUED" not in proc.stdout


def test_paths_in_a_rendered_script_are_absolute_so_sbatch_can_run_anywhere(tmp_path, capsys, monkeypatch):
    work = tmp_path / "project"
    (work / "jobs").mkdir(parents=True)
    shutil.copy(JOBS / "stats.py", work / "jobs" / "stats.py")
    monkeypatch.chdir(work)
    assert main(["slurm", "render", "jobs/stats.py", "--time", "00:10:00", "--input", "data/x.h5:/grp/x",
                 "--output", "out/r.h5", "--checkpoint", "../c.ckpt.h5", "--template", "requeue"]) == 0
    script = capsys.readouterr().out
    words = srun_words(script, cwd=Path("/"))            # submitted from elsewhere
    hpcdist_cmd, run, job = words[:3]
    assert run == "run" and job == f"{work}/jobs/stats.py"
    assert words[3:] == ["--input", f"{work}/data/x.h5:/grp/x", "--output", f"{work}/out/r.h5",
                         "--checkpoint", f"{tmp_path}/c.ckpt.h5"]
    assert os.path.isabs(hpcdist_cmd) and os.access(hpcdist_cmd, os.X_OK)   # this venv's hpcdist
    assert hpcdist_cmd == str(Path(sys.executable).with_name("hpcdist"))
    assert "# Made by: hpcdist slurm render jobs/stats.py" in script    # the command as typed


@pytest.mark.parametrize("given,placed", [
    ("synthetic:rows=1000,cols=2", "synthetic:rows=1000,cols=2"),     # generated data: no file
    ("range:50", "range:50"),
    ("x.npy", "{work}/x.npy"),
    ("/abs/y.h5:/a/b", "/abs/y.h5:/a/b"),
])
def test_only_the_file_part_of_an_input_is_made_absolute(given, placed, tmp_path, capsys, monkeypatch):
    shutil.copy(JOBS / "stats.py", tmp_path / "stats.py")
    monkeypatch.chdir(tmp_path)
    assert main(["slurm", "render", "stats.py", "--time", "00:10:00", "--input", given,
                 "--hpcdist", "/opt/hpcdist"]) == 0
    words = srun_words(capsys.readouterr().out, cwd=Path("/"))
    assert words[:3] == ["/opt/hpcdist", "run", f"{tmp_path}/stats.py"]
    assert words[3:] == ["--input", placed.format(work=tmp_path)]


def test_an_array_script_names_its_sweep_file_absolutely(tmp_path, capsys, monkeypatch):
    shutil.copy(JOBS / "stats.py", tmp_path / "stats.py")
    (tmp_path / "sweep.txt").write_text("--param bins=8\n")
    monkeypatch.chdir(tmp_path)
    assert main(["slurm", "render", "stats.py", "--time", "00:10:00", "--template", "array",
                 "--sweep", "sweep.txt", "--output", "o-%a.h5"]) == 0
    script = capsys.readouterr().out
    assert f"HPCDIST_SWEEP=${{HPCDIST_SWEEP:-{tmp_path}/sweep.txt}}" in script
    assert f"HPCDIST_OUTPUT=${{HPCDIST_OUTPUT-{tmp_path}/o-%a.h5}}" in script


# ---- bad input: one line, exit 2 -------------------------------------------------------------------

BAD = {
    "misspelled option": (["jobs/stats.py", "--time", "00:10:00", "--nodez", "2"],
                          "unknown option --nodez (did you mean --nodes?); valid options: --account, "),
    "misspelled option with =": (["jobs/stats.py", "--time", "00:10:00", "--ntasks-per-nod=2"],
                                 "unknown option --ntasks-per-nod (did you mean --ntasks-per-node?)"),
    "no time": (["jobs/stats.py"], "the following arguments are required: --time"),
    "bad time": (["jobs/stats.py", "--time", "2h"], "--time expects HH:MM:SS or D-HH:MM:SS, got '2h'"),
    "minutes out of range": (["jobs/stats.py", "--time", "01:60:00"], "--time expects HH:MM:SS"),
    "zero nodes": (["jobs/stats.py", "--time", "00:10:00", "--nodes", "0"], "expected a number >= 1, got '0'"),
    "unknown template": (["jobs/stats.py", "--time", "00:10:00", "--template", "loop"],
                         "invalid choice: 'loop' (choose from 'run', 'requeue', 'array')"),
    "unknown mpi plugin": (["jobs/stats.py", "--time", "00:10:00", "--mpi", "pmi3"],
                           "invalid choice: 'pmi3' (choose from 'pmi2', 'pmix'"),
    "missing job file": (["jobs/nope.py", "--time", "00:10:00"], "jobs/nope.py: no such job file"),
    "requeue without checkpoint": (["jobs/stats.py", "--time", "00:10:00", "--template", "requeue"],
                                   "--template requeue needs --checkpoint PATH"),
    "signal after the limit": (["jobs/stats.py", "--time", "00:01:00", "--template", "requeue",
                                "--checkpoint", "c.h5"], "--signal must be between 1 s and the time limit (60 s)"),
    "array without sweep": (["jobs/stats.py", "--time", "00:10:00", "--template", "array"],
                            "--template array needs --sweep FILE"),
    "array output without %a": (["jobs/stats.py", "--time", "00:10:00", "--template", "array", "--sweep",
                                 "tests/golden/slurm/sweep.txt", "--output", "out.h5"],
                                "--output of an array must contain %a"),
    "missing sweep file": (["jobs/stats.py", "--time", "00:10:00", "--template", "array", "--sweep", "nope.txt"],
                           "--sweep nope.txt: No such file or directory"),
    "sweep for a run": (["jobs/stats.py", "--time", "00:10:00", "--sweep", "tests/golden/slurm/sweep.txt"],
                        "--sweep is for --template array only"),
    "param without =": (["jobs/stats.py", "--time", "00:10:00", "--param", "bins"], "--param expects NAME=VALUE"),
    "malformed input": (["jobs/stats.py", "--time", "00:10:00", "--input", "data.h5"],
                        "--input data.h5: expected FILE.h5:/path/to/dataset, FILE.npy, synthetic:"),
    "param with a space": (["jobs/stats.py", "--time", "00:10:00", "--param", "name=a b"],
                           "values in a batch script cannot hold spaces"),
    "bad job name": (["jobs/stats.py", "--time", "00:10:00", "--job-name", "my job"], "--job-name may hold"),
    "no action": ([], "the following arguments are required"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_render_options_are_one_line_and_exit_2(case, capsys, monkeypatch):
    args, message = BAD[case]
    monkeypatch.chdir(ROOT)
    argv = ["slurm", "render", *args] if args else ["slurm"]
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv)
        raise SystemExit(code)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2, err
    assert out == ""
    lines = [line for line in err.splitlines() if not line.startswith("usage:")]
    assert len(lines) == 1 and message in lines[0], err


def test_blank_line_in_sweep_is_refused(tmp_path, capsys, monkeypatch):
    sweep = tmp_path / "sweep.txt"
    sweep.write_text("--input a.h5:/x\n\n--input b.h5:/x\n")
    monkeypatch.chdir(ROOT)
    assert main(["slurm", "render", "jobs/stats.py", "--time", "00:10:00", "--template", "array",
                 "--sweep", str(sweep)]) == 2
    assert "line 2 is blank (line N is array task N-1)" in capsys.readouterr().err


def test_submit_dry_run_prints_the_script_and_submits_nothing(capsys, monkeypatch):
    in_checkout(monkeypatch)
    monkeypatch.setenv("PATH", "/nonexistent")  # no sbatch: a dry run must not need one
    assert main(["slurm", "submit", *CASES["requeue"], "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert out.replace(str(ROOT), CHECKOUT) == (GOLDEN / "requeue.sbatch").read_text()
    assert "dry run, not submitted: sbatch --parsable" in err


def test_submit_without_sbatch_says_where_to_get_one(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["slurm", "submit", "jobs/stats.py", "--time", "00:10:00"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hpcdist: error: sbatch not found") and "slurm/local-cluster.sh start" in err
    assert len(err.splitlines()) == 1


# ---- what a run learns from its allocation --------------------------------------------------------

def test_slurm_attrs_outside_slurm_are_empty():
    assert allocation.slurm_attrs({"PATH": "/bin"}) == {}


def test_slurm_attrs_inside_an_allocation():
    env = {"SLURM_JOB_ID": "42", "SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "n[01-02]",
           "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_JOB_ID": "40", "SLURM_JOB_PARTITION": "batch"}
    attrs = allocation.slurm_attrs(env)
    assert attrs == {"slurm_job_id": 42, "slurm_restart_count": 0, "slurm_ntasks": 4,
                     "slurm_nodelist": "n[01-02]", "slurm_array_task_id": 3, "slurm_array_job_id": 40,
                     "slurm_partition": "batch"}
    assert allocation.slurm_attrs({**env, "SLURM_RESTART_COUNT": "2"})["slurm_restart_count"] == 2


@pytest.mark.parametrize("env,size,bad", [
    ({}, 1, False),                                                                   # no Slurm
    ({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "4"}, 1, False),                           # batch shell, no srun
    ({"SLURM_JOB_ID": "1", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "1"}, 1, False),   # srun -n 1
    ({"SLURM_JOB_ID": "1", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2"}, 2, False),   # right plugin
    ({"SLURM_JOB_ID": "1", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2"}, 1, True),    # wrong plugin
    ({"SLURM_JOB_ID": "1", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "3", "SLURM_MPI_TYPE": "pmix"}, 1, True),
])
def test_wrong_mpi_plugin_is_detected(env, size, bad):
    problem = slurm_env.plugin_error(size, env)
    assert (problem is not None) == bad
    if bad:
        assert "but MPI sees a world of 1 rank in each" in problem and "--mpi=pmi2" in problem


def test_restart_line_only_on_a_restart():
    assert slurm_env.restart_line({"SLURM_JOB_ID": "7"}) is None
    assert slurm_env.restart_line({"SLURM_JOB_ID": "7", "SLURM_RESTART_COUNT": "0"}) is None
    assert slurm_env.restart_line({"SLURM_JOB_ID": "7", "SLURM_RESTART_COUNT": "2"}).startswith(
        "hpcdist: slurm job 7 restart 2 (SLURM_RESTART_COUNT=2)")


@pytest.mark.parametrize("script,env,message", [
    ("requeue.sbatch", {"HPCDIST_CHECKPOINT": ""}, "HPCDIST_CHECKPOINT is empty: a run that requeues itself needs"),
    ("array-sweep.sbatch", {}, "error: not an array task: submit with sbatch"),
    ("run.sbatch", {"HPCDIST": "/nonexistent/hpcdist"}, "'/nonexistent/hpcdist' not found on "),
])
def test_scripts_refuse_a_wrong_setup_before_srun(script, env, message, tmp_path):
    """Run as plain bash (no Slurm): the checks before srun end the script with one line and exit 2."""
    proc = subprocess.run(["bash", str(ROOT / "slurm" / script)], capture_output=True, text=True, timeout=20,
                          cwd=tmp_path, env={"PATH": os.environ["PATH"], "HPCDIST": "true", **env})
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr


@pytest.mark.parametrize("case", ["run-everything", "requeue", "array"])
def test_numba_s_cache_is_filled_once_per_node_with_the_run_s_input_and_params_before_the_run(
        case, capsys, monkeypatch, tmp_path):
    text = render(CASES[case], capsys, monkeypatch).replace(CHECKOUT, str(ROOT))
    fake = (text.replace("srun --mpi=none ", "printf 'compile step:'; printf ' <%s>' ")
                .replace('srun --mpi="$HPCDIST_MPI" ', "echo; echo run step; true ")
                .replace('command -v "$HPCDIST"', "true"))
    proc = subprocess.run(["bash", "-c", fake], capture_output=True, text=True, timeout=10, cwd=tmp_path,
                          env={"PATH": os.environ["PATH"], "SLURM_JOB_NUM_NODES": "8", "SLURM_ARRAY_TASK_ID": "1"})
    assert proc.returncode == 0, proc.stderr
    compile_line, run_line = proc.stdout.splitlines()[:2]
    assert run_line == "run step"
    words = compile_line.removeprefix("compile step: ").split(" ")
    assert words[:3] == ["<--nodes=8>", "<--ntasks=8>", "<--ntasks-per-node=1>"]    # one task per node
    assert words[3].endswith("/hpcdist>") and words[4:6] == ["<compile>", f"<{ROOT}/jobs/stats.py>"]
    expected = {"run-everything": ["<--input>", "</scratch/big", "data.h5:/particles/energy>", "<--param>",
                                   "<bins=128>", "<--param>", "<lo=-5>", "<--param>", "<hi=5>"],
                "requeue": ["<--input>", "</scratch/big.h5:/x>"],
                "array": ["<--param>", "<bins=32>", "<--input>", "</scratch/run2.h5:/particles/energy>"]}[case]
    assert words[6:] == expected, words
