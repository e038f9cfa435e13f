"""The batch scripts, as templates: ``{{name}}`` is replaced by :mod:`hpcdist.slurm.render`.

Each script is plain bash that users read, copy and edit. The values a user gave ``hpcdist slurm
render`` land in two places: ``#SBATCH`` lines (which options given to ``sbatch`` override) and
``HPCDIST_*`` variables at the top (which the submitting environment overrides, e.g.
``sbatch --export=ALL,HPCDIST_INPUT=b.h5:/x run.sbatch``). ``slurm/*.sbatch`` in the repository are
these templates rendered with example values; the tests keep them equal.
"""

# Shared by every template: where the script comes from, the #SBATCH block, strict mode.
HEADER = """\
#!/bin/bash
# {{title}}
# Made by: {{command}}
#
{{usage}}
#
# Exit code (hpcdist's): 0 done, 1 a failure inside the job (traceback in the log), 2 bad input or
# set-up, such as a wrong MPI plugin or an unwritable output directory (one line in the log),
# 75 checkpointed after a signal (run it again to resume).
{{sbatch}}

set -uo pipefail
"""

# The variables every template starts with (array: HPCDIST_INPUT/OUTPUT are per task, see there).
VARIABLES = """\
# ---- what to run: edit here, or set these variables in the environment you submit from ---------
HPCDIST=${HPCDIST:-{{hpcdist}}}   # the hpcdist command: a venv's bin/hpcdist that every node sees
HPCDIST_JOB=${HPCDIST_JOB:-{{job}}}   # paths are absolute, so sbatch may run anywhere
HPCDIST_INPUT=${HPCDIST_INPUT-{{input}}}   # empty: the job's own default input
HPCDIST_OUTPUT=${HPCDIST_OUTPUT-{{output}}}   # empty: the results are printed to the log
HPCDIST_CHECKPOINT=${HPCDIST_CHECKPOINT-{{checkpoint}}}   # {{checkpoint_note}}
HPCDIST_ARGS=${HPCDIST_ARGS-{{args}}}   # more `hpcdist run` options, split at spaces
# srun's MPI plugin (`srun --mpi=list`): pmi2 for the PyPI mpich wheel, MPICH and Intel MPI;
# pmix for Open MPI. A wrong one makes every task a world of 1: hpcdist stops with exit 2.
HPCDIST_MPI=${HPCDIST_MPI:-{{mpi}}}
"""

# Checks and the argument list, shared by the templates that run one step.
PREPARE = """\
if ! command -v "$HPCDIST" >/dev/null 2>&1; then
    log "error: '$HPCDIST' not found on $(hostname): activate the venv before sbatch, or set HPCDIST"
    exit 2
fi
# Numba threads per task: the CPUs Slurm gave it (hpcdist's own default divides the node's cores).
export NUMBA_NUM_THREADS=${NUMBA_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
args=(run "$HPCDIST_JOB")
[[ -z $HPCDIST_INPUT ]] || args+=(--input "$HPCDIST_INPUT")
[[ -z $HPCDIST_OUTPUT ]] || args+=(--output "$HPCDIST_OUTPUT")
[[ -z $HPCDIST_CHECKPOINT ]] || args+=(--checkpoint "$HPCDIST_CHECKPOINT")
read -ra more <<< "$HPCDIST_ARGS"
args+=("${more[@]}")
"""

# Fill numba's cache once per node before the run (the step is quick when the cache is warm).
COMPILE = """\
# numba's cache, once per node: every rank of the run then loads the kernels, all at once, instead
# of compiling them (seconds each). --input and --param go along: they fix the kernels' types.
compile=(compile "$HPCDIST_JOB")
for ((i = 2; i < ${#args[@]}; i++)); do
    case ${args[i]} in
        -i|--input|-p|--param) compile+=("${args[i]}" "${args[i + 1]:-}"); i=$((i + 1)) ;;
        --input=*|--param=*) compile+=("${args[i]}") ;;
    esac
done
srun --mpi=none --nodes="${SLURM_JOB_NUM_NODES:-1}" --ntasks="${SLURM_JOB_NUM_NODES:-1}" --ntasks-per-node=1 \\
    "$HPCDIST" "${compile[@]}"
code=$?
if ((code == 2)); then exit 2; fi   # a bad job, input or param: the run would say the same, once
((code == 0)) || log "hpcdist compile exited with $code: the ranks compile for themselves"
"""

LOG = """\
# ---- run -----------------------------------------------------------------------------------------
log() { echo "{{script}}: job ${SLURM_JOB_ID:-?}: $*" >&2; }
"""

RUN = HEADER + """
""" + VARIABLES + """
""" + LOG + PREPARE + COMPILE + """log "${SLURM_NTASKS:-?} task(s) on ${SLURM_JOB_NODELIST:-?}: srun --mpi=$HPCDIST_MPI $HPCDIST ${args[*]}"
srun --mpi="$HPCDIST_MPI" "$HPCDIST" "${args[@]}"
code=$?
log "hpcdist exited with $code"
exit "$code"
"""

REQUEUE = HEADER + """
""" + VARIABLES + """\
HPCDIST_MAX_REQUEUES=${HPCDIST_MAX_REQUEUES:-{{max_requeues}}}   # a job that never gets further stops here

""" + LOG + """# Slurm sends USR1 to this shell (the B: of --signal) before the time limit, at any moment, even
# while the steps below prepare the run: the traps come first (bash's default for USR1 is to end
# the script, and the job with it). bash runs a trap only while it waits, so srun runs in the
# background and the shell waits for it. The trap passes the signal on to srun, which hands it to
# every task: hpcdist checkpoints and exits with 75. TERM (scancel, scontrol requeue, the time
# limit itself) reaches every task directly; the tasks checkpoint, and Slurm, not this script,
# decides what comes next.
signalled=""
interrupted=""
step=""
on_signal() {
    signalled=$1
    interrupted=1
    if [[ $1 == USR1 ]]; then
        log "got SIGUSR1 (time limit near or preemption): asking hpcdist to checkpoint"
        [[ -z $step ]] || kill -USR1 "$step" 2>/dev/null || true
    else
        log "got SIG$1: hpcdist checkpoints and stops"
    fi
}
trap 'on_signal USR1' USR1
trap 'on_signal TERM' TERM

if [[ -z $HPCDIST_CHECKPOINT ]]; then
    log "error: HPCDIST_CHECKPOINT is empty: a run that requeues itself needs a checkpoint to resume from"
    exit 2
fi
""" + PREPARE + """restarts=${SLURM_RESTART_COUNT:-0}
log "run $((restarts + 1)) (SLURM_RESTART_COUNT=$restarts), ${SLURM_NTASKS:-?} task(s) on ${SLURM_JOB_NODELIST:-?}"

# A requeued job keeps its job id, and MPICH names its shared memory after the job step: a
# segment left by the previous run would be attached by the next one and fail MPI_Init. hpcdist
# unlinks its MPI segments as soon as every rank has started, so only a kill during start-up (or
# an older hpcdist) leaves one; as a safety net, on a restart every node first drops this user's
# MPICH segments that no process has mapped.
if (( restarts > 0 )); then
    srun --mpi=none --nodes="${SLURM_JOB_NUM_NODES:-1}" --ntasks="${SLURM_JOB_NUM_NODES:-1}" --ntasks-per-node=1 bash -c '
        for f in /dev/shm/mpich_shm_* /dev/shm/mpich_vci_*; do
            [[ -O $f && -n $(find "$f" -mmin +0.1 2>/dev/null) ]] || continue
            grep -qsF -- "${f##*/}" /proc/[0-9]*/maps || rm -f -- "$f"
        done' || log "warning: could not clean stale MPICH shared memory"
fi

""" + COMPILE + """
if [[ -n $signalled ]]; then
    log "SIG$signalled came before the run started: not starting it (the last checkpoint stands)"
    code=75
else
    srun --mpi="$HPCDIST_MPI" "$HPCDIST" "${args[@]}" &
    step=$!
    while :; do
        interrupted=""
        code=0
        wait "$step" || code=$?
        # a trap cut the wait short (status > 128): wait again for srun's own exit status
        [[ -n $interrupted ]] && (( code > 128 )) && continue
        break
    done
    # a task that got USR1 before hpcdist could catch it died of it (128 + 10): its last
    # checkpoint stands, so this is a requeue like any other
    [[ $signalled == USR1 ]] && (( code == 138 )) && code=75
fi

if (( code == 75 )) && [[ $signalled != TERM ]]; then
    if (( restarts >= HPCDIST_MAX_REQUEUES )); then
        log "checkpointed, but this job was requeued $restarts times already (HPCDIST_MAX_REQUEUES): giving up; resubmit to go on"
        exit 75
    fi
    log "checkpointed: requeueing myself (restart $((restarts + 1)) of at most $HPCDIST_MAX_REQUEUES)"
    scontrol requeue "$SLURM_JOB_ID" && exit 0
    log "error: scontrol requeue $SLURM_JOB_ID failed: resubmit this script to resume from the checkpoint"
    exit 75
fi
case $code in
    0) log "done" ;;
    75) log "checkpointed after SIG$signalled: resubmit (or let Slurm requeue) to resume" ;;
    *) log "hpcdist exited with $code" ;;
esac
exit "$code"
"""

ARRAY = HEADER + """
# ---- what to run: edit here, or set these variables in the environment you submit from ---------
HPCDIST=${HPCDIST:-{{hpcdist}}}   # the hpcdist command: a venv's bin/hpcdist that every node sees
HPCDIST_JOB=${HPCDIST_JOB:-{{job}}}   # paths are absolute, so sbatch may run anywhere
# One line per array task (line 1 is task 0): the `hpcdist run` options of that task, e.g.
#   --input /data/run1.h5:/x
#   --input /data/run2.h5:/x --param bins=128
# (relative paths in these lines are taken from the directory sbatch runs in)
# Keep --array above in step with the number of lines.
HPCDIST_SWEEP=${HPCDIST_SWEEP:-{{sweep}}}
HPCDIST_INPUT=${HPCDIST_INPUT-{{input}}}   # for every task, unless its line gives --input
HPCDIST_OUTPUT=${HPCDIST_OUTPUT-{{output}}}   # %a becomes the task id: one output per task
HPCDIST_CHECKPOINT=${HPCDIST_CHECKPOINT-{{checkpoint}}}   # %a becomes the task id; empty: none
HPCDIST_ARGS=${HPCDIST_ARGS-{{args}}}   # `hpcdist run` options for every task, split at spaces
# srun's MPI plugin (`srun --mpi=list`): pmi2 for the PyPI mpich wheel, MPICH and Intel MPI;
# pmix for Open MPI. A wrong one makes every task a world of 1: hpcdist stops with exit 2.
HPCDIST_MPI=${HPCDIST_MPI:-{{mpi}}}

# ---- this task's line ----------------------------------------------------------------------------
log() { echo "{{script}}: job ${SLURM_ARRAY_JOB_ID:-?}_${SLURM_ARRAY_TASK_ID:-?}: $*" >&2; }
task=${SLURM_ARRAY_TASK_ID:-}
if [[ -z $task ]]; then
    log "error: not an array task: submit with sbatch (the #SBATCH --array line) or sbatch --array=0-N"
    exit 2
fi
if [[ ! -r $HPCDIST_SWEEP ]]; then
    log "error: cannot read the sweep file $HPCDIST_SWEEP"
    exit 2
fi
line=$(sed -n "$((task + 1))p" "$HPCDIST_SWEEP")
if [[ -z ${line//[[:space:]]/} ]]; then
    log "error: $HPCDIST_SWEEP has no line $((task + 1)) for task $task ($(wc -l < "$HPCDIST_SWEEP") lines)"
    exit 2
fi
read -ra task_args <<< "$line"
HPCDIST_OUTPUT=${HPCDIST_OUTPUT//'%a'/$task}
HPCDIST_CHECKPOINT=${HPCDIST_CHECKPOINT//'%a'/$task}

# ---- run -----------------------------------------------------------------------------------------
""" + PREPARE + """args+=("${task_args[@]}")
""" + COMPILE + """log "${SLURM_NTASKS:-?} task(s) on ${SLURM_JOB_NODELIST:-?}: srun --mpi=$HPCDIST_MPI $HPCDIST ${args[*]}"
srun --mpi="$HPCDIST_MPI" "$HPCDIST" "${args[@]}"
code=$?
log "hpcdist exited with $code"
exit "$code"
"""

TEMPLATES = {"run": RUN, "requeue": REQUEUE, "array": ARRAY}
