"""Validated parameters -> a batch script. Every problem is a :class:`UserError` naming the option."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field, fields, replace

from hpcdist.errors import UserError
from hpcdist.options import check_checkpoint_every, check_shard_rows
from hpcdist.slurm.templates import TEMPLATES

# srun --mpi plugins a Slurm may have (`srun --mpi=list`); pmi2 is what the PyPI mpich wheel speaks.
MPI_PLUGINS = ("pmi2", "pmix", "pmix_v2", "pmix_v3", "pmix_v4", "pmix_v5", "cray_shasta", "none")
# the file each template is shipped as in slurm/ (also the name its log lines carry)
SCRIPT_NAMES = {"run": "run.sbatch", "requeue": "requeue.sbatch", "array": "array-sweep.sbatch"}
DEFAULT_LOG = {"run": "%x-%j.out", "requeue": "%x-%j.out", "array": "%x-%A_%a.out"}

_TIME = re.compile(r"^(?:(?P<d>\d+)-)?(?P<h>\d{1,3}):(?P<m>\d\d):(?P<s>\d\d)$")
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass
class Spec:
    """What ``hpcdist slurm render`` was asked for. Strings as typed; :meth:`check` validates."""

    job: str
    time: str
    nodes: int = 1
    ntasks_per_node: int = 1
    cpus_per_task: int = 1
    template: str = "run"
    input: str | None = None
    output: str | None = None
    checkpoint: str | None = None
    checkpoint_every: float | None = None
    params: list[str] = field(default_factory=list)
    shard_rows: int | None = None
    partition: str | None = None
    account: str | None = None
    job_name: str | None = None
    mpi: str = "pmi2"
    signal: int = 120
    max_requeues: int = 5
    sweep: str | None = None
    log: str | None = None
    hpcdist: str = "hpcdist"

    def check(self, *, check_files: bool = True) -> None:
        if self.template not in TEMPLATES:
            raise UserError(f"--template must be one of {', '.join(TEMPLATES)}, got {self.template!r}")
        if check_files and not os.path.isfile(self.job):
            raise UserError(f"{self.job}: no such job file")
        for name in ("nodes", "ntasks_per_node", "cpus_per_task"):
            if getattr(self, name) < 1:
                raise UserError(f"--{_opt(name)} must be >= 1, got {getattr(self, name)}")
        seconds = time_seconds(self.time)
        if self.mpi not in MPI_PLUGINS:
            raise UserError(f"--mpi must be one of {', '.join(MPI_PLUGINS)}, got {self.mpi!r}")
        if self.job_name is not None and not _NAME.match(self.job_name):
            raise UserError(f"--job-name may hold letters, digits and _.+- only, got {self.job_name!r}")
        for name in ("partition", "account"):
            value = getattr(self, name)
            if value is not None and not re.match(r"^[A-Za-z0-9_.,+-]+$", value):
                raise UserError(f"--{name}: not a Slurm name: {value!r}")
        for text in self.params:
            if "=" not in text or text.startswith("="):
                raise UserError(f"--param expects NAME=VALUE, got {text!r}")
        for name in ("params", "checkpoint_every", "shard_rows"):
            for word in _words(getattr(self, name)):
                if not word or any(c.isspace() for c in word):
                    raise UserError(f"--{_opt(name)}: values in a batch script cannot hold spaces: {word!r}")
        check_checkpoint_every(self.checkpoint_every)      # the same rules as hpcdist run's
        check_shard_rows(self.shard_rows)
        for name in ("input", "output", "checkpoint", "log", "hpcdist"):
            value = getattr(self, name)
            if value is not None and (not value or "\n" in value):
                raise UserError(f"--{name} must be a non-empty single line, got {value!r}")
        if self.template == "requeue":
            if not self.checkpoint:
                raise UserError("--template requeue needs --checkpoint PATH (the run resumes from it)")
            if not 0 < self.signal < seconds:
                raise UserError(f"--signal must be between 1 s and the time limit ({seconds} s), got {self.signal}")
            if self.max_requeues < 0:
                raise UserError(f"--max-requeues must be >= 0, got {self.max_requeues}")
        if self.template == "array":
            if not self.sweep:
                raise UserError("--template array needs --sweep FILE (one line of hpcdist run options per task)")
            if check_files:
                sweep_lines(self.sweep)
            for name in ("output", "checkpoint"):
                value = getattr(self, name)
                if value and "%a" not in value:
                    raise UserError(f"--{name} of an array must contain %a (the task id), or every task "
                                    f"writes the same file: got {value!r}")
        elif self.sweep is not None:
            raise UserError("--sweep is for --template array only")

    @property
    def name(self) -> str:
        if self.job_name:
            return self.job_name
        stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", os.path.splitext(os.path.basename(self.job))[0])
        return f"hpcdist-{stem}"

    def run_args(self) -> list[str]:
        """The ``hpcdist run`` options that go into ``HPCDIST_ARGS``."""
        args: list[str] = []
        for text in self.params:
            args += ["--param", text]
        if self.shard_rows is not None:
            args += ["--shard-rows", str(self.shard_rows)]
        if self.checkpoint_every is not None:
            args += ["--checkpoint-every", _num(self.checkpoint_every)]
        return args

    def command(self) -> str:
        """The ``hpcdist slurm render`` command that makes this script (canonical option order)."""
        words = ["hpcdist", "slurm", "render", self.job]
        default = Spec(job=self.job, time=self.time)
        always = ("template", "nodes", "ntasks_per_node", "time")
        rest = [f.name for f in fields(self) if f.name not in always and f.name != "job"]
        for name in (*always, *rest):
            value = getattr(self, name)
            if name in ("signal", "max_requeues") and self.template != "requeue":
                continue
            if name == "params":
                words += [w for text in value for w in ("--param", text)]
            elif name in always or (value is not None and value != getattr(default, name)):
                words += [f"--{_opt(name)}", _num(value) if isinstance(value, float) else str(value)]
        return " ".join(shlex.quote(w) for w in words)


    def placed(self, cwd: str | None = None) -> "Spec":
        """This spec with every path absolute (relative ones taken from ``cwd``), so the script runs
        the same from whatever directory it is submitted: the job file, the file part of an input
        (not ``synthetic:``/``range:``), output, checkpoint, sweep file and hpcdist itself. The log
        (``#SBATCH --output``) stays relative: Slurm puts it where sbatch runs, as users expect.
        """
        base = cwd or os.getcwd()

        def absolute(path: str | None) -> str | None:
            return None if path is None else os.path.normpath(os.path.join(base, path))

        return replace(self, job=absolute(self.job), input=_absolute_input(self.input, absolute),
                       output=absolute(self.output), checkpoint=absolute(self.checkpoint),
                       sweep=absolute(self.sweep), hpcdist=installed_hpcdist(self.hpcdist, base))


def installed_hpcdist(command: str, cwd: str) -> str:
    """The hpcdist command as an absolute path: a path is made absolute; the default ``hpcdist`` is
    the one beside this Python (the hpcdist that is rendering), else the one on PATH; a name found
    nowhere stays as it is (the script says so on the node)."""
    if os.sep in command:
        return os.path.normpath(os.path.join(cwd, command))
    if command == "hpcdist":
        beside = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "hpcdist")
        if os.path.isfile(beside) and os.access(beside, os.X_OK):
            return beside
    found = shutil.which(command)
    return os.path.abspath(found) if found else command


def _absolute_input(spec: str | None, absolute) -> str | None:
    """``data.h5:/x`` -> ``/abs/data.h5:/x``; ``x.npy`` -> ``/abs/x.npy``; generated data as is."""
    if spec is None or spec.startswith(("synthetic:", "range:")):
        return spec
    if spec.endswith(".npy"):
        return absolute(spec)
    path, sep, dataset = spec.rpartition(":")
    if not sep or not path or not dataset.startswith("/"):
        raise UserError(f"--input {spec}: expected FILE.h5:/path/to/dataset, FILE.npy, "
                        f"synthetic:rows=N,... or range:N")
    return f"{absolute(path)}:{dataset}"


def time_seconds(text: str) -> int:
    """``[D-]HH:MM:SS`` -> seconds, refusing anything Slurm would read differently."""
    m = _TIME.match(text or "")
    if not m or int(m["m"]) > 59 or int(m["s"]) > 59:
        raise UserError(f"--time expects HH:MM:SS or D-HH:MM:SS, got {text!r}")
    seconds = ((int(m["d"] or 0) * 24 + int(m["h"])) * 60 + int(m["m"])) * 60 + int(m["s"])
    if seconds == 0:
        raise UserError("--time must be longer than 00:00:00")
    return seconds


def sweep_lines(path: str) -> list[str]:
    """The sweep file's lines, one per array task; blank lines are refused (they would shift tasks)."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise UserError(f"--sweep {path}: {exc.strerror or exc}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise UserError(f"--sweep {path}: the file is empty (one line of hpcdist run options per task)")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise UserError(f"--sweep {path}: line {number} is blank (line N is array task N-1)")
    return lines


def render(spec: Spec, *, check_files: bool = True, cwd: str | None = None) -> str:
    """The batch script. Paths in it are absolute (relative ones from ``cwd``, default the current
    directory), so it can be submitted from anywhere; the ``# Made by:`` line keeps them as typed."""
    spec.check(check_files=check_files)
    tasks = len(sweep_lines(spec.sweep)) if spec.template == "array" and check_files else None
    script = SCRIPT_NAMES[spec.template]
    at = spec.placed(cwd)
    values = {
        "title": _title(spec),
        "command": spec.command(),
        "usage": _usage(spec, script),
        "sbatch": "\n".join(_sbatch_lines(spec, tasks)),
        "script": script,
        "hpcdist": _q(at.hpcdist),
        "job": _q(at.job),
        "input": _q(at.input or ""),
        "output": _q(at.output or ""),
        "checkpoint": _q(at.checkpoint or ""),
        "checkpoint_note": ("resumed from when it exists: keep it where every node sees it"
                            if spec.template == "requeue" else "resumed from when it exists; empty: none"),
        "args": _q(" ".join(spec.run_args())),
        "mpi": spec.mpi,
        "max_requeues": str(spec.max_requeues),
        "sweep": _q(at.sweep or ""),
    }
    return fill(TEMPLATES[spec.template], values)


def fill(template: str, values: dict[str, str]) -> str:
    missing = sorted(set(_PLACEHOLDER.findall(template)) - values.keys())
    if missing:
        raise KeyError(f"template placeholders without a value: {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _title(spec: Spec) -> str:
    if spec.template == "requeue":
        return (f"hpcdist on Slurm: a long run of {spec.job} that checkpoints before its time limit "
                f"and requeues itself.")
    if spec.template == "array":
        return f"hpcdist on Slurm: a job array, one run of {spec.job} per line of {spec.sweep}."
    nodes = f"{spec.nodes} node" + ("s" if spec.nodes > 1 else "")
    tasks = f"{spec.ntasks_per_node} task" + ("s" if spec.ntasks_per_node > 1 else "")
    return f"hpcdist on Slurm: one run of {spec.job} on {nodes}, {tasks} per node."


def _usage(spec: Spec, script: str) -> str:
    lines = []
    if spec.template == "requeue":
        lines += [
            "Shortly before the time limit Slurm signals this script (--signal), hpcdist checkpoints and",
            "exits 75, and the script requeues the job: the next run resumes from the checkpoint with",
            "SLURM_RESTART_COUNT one higher (one log line per restart). Preemption, `scontrol requeue` and",
            "a node failure resume the same way; after scancel, submit the script again to resume.",
            "",
        ]
    if spec.template == "array":
        lines += [
            "Every array task runs the job once with its own line of the sweep file, its own output and",
            "its own checkpoint (%a in a path becomes the task id).",
            "",
        ]
    examples = [
        (f"sbatch {script}", "submit as written"),
        (f"sbatch --nodes=4 --ntasks-per-node=32 {script}", "sbatch options override the #SBATCH lines"),
        (f"sbatch --export=ALL,HPCDIST_MPI=pmix {script}", "the environment overrides HPCDIST_* below"),
    ]
    pad = max(len(cmd) for cmd, _ in examples) + 2
    lines += [f"  {cmd:<{pad}}# {note}" for cmd, note in examples]
    return "\n".join(("# " + line).rstrip() for line in lines)


def _sbatch_lines(spec: Spec, tasks: int | None) -> list[str]:
    rows: list[tuple[str, str]] = [
        (f"--job-name={spec.name}", ""),
        (f"--nodes={spec.nodes}", ""),
        (f"--ntasks-per-node={spec.ntasks_per_node}", "MPI ranks per node"),
        (f"--cpus-per-task={spec.cpus_per_task}", "Numba threads per rank"),
        (f"--time={spec.time}", ""),
        (f"--output={spec.log or DEFAULT_LOG[spec.template]}",
         "%x job name, %j job id" + (", %A array job id, %a task id" if spec.template == "array" else "")
         + ": every rank's output goes here"),
    ]
    if spec.partition:
        rows.append((f"--partition={spec.partition}", ""))
    if spec.account:
        rows.append((f"--account={spec.account}", ""))
    if spec.template == "requeue":
        rows += [
            (f"--signal=B:USR1@{spec.signal}",
             f"USR1 to this script {spec.signal} s before the limit (it may come up to a minute earlier)"),
            ("--requeue", "the job may go back to the queue: this script does that after a checkpoint"),
            ("--open-mode=append", "the runs of a requeued job append to one log"),
        ]
    if spec.template == "array":
        last = (tasks if tasks is not None else 1) - 1
        rows.append((f"--array=0-{last}", f"one task per line of the sweep file; 0-{last}%4 runs at most 4 at once"))
    width = max(len(opt) for opt, _ in rows) + 10
    return [(f"#SBATCH {opt:<{width - 2}}# {note}" if note else f"#SBATCH {opt}") for opt, note in rows]


def _words(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _opt(name: str) -> str:
    return name.replace("_", "-")


def _num(value: float | int) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _q(text: str) -> str:
    """A bash word for the right-hand side of ``${VAR-word}``: quoted only when it must be."""
    return shlex.quote(text) if text else "''"
