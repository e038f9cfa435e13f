#!/usr/bin/env bash
# A single-node Slurm on this machine, for trying batch scripts on a laptop and for the tests/CI.
#
#   bash slurm/local-cluster.sh start    # install if missing, configure, start, wait until the node is idle
#   bash slurm/local-cluster.sh status   # exit 0 if running and idle/allocated, 1 otherwise
#   bash slurm/local-cluster.sh stop     # cancel jobs, stop the daemons this script started
#   bash slurm/local-cluster.sh env      # print `export SLURM_CONF=...` (eval it in your shell)
#
# Every command is idempotent. Needs root (apt-get, daemons as SlurmUser=root) and no systemd:
# daemons are started directly and stopped by their pid files, never by name. Tested on Debian 12.
#
# Environment:
#   HPCDIST_SLURM_STATE  state dir: config, spool, logs, pid files  (default /tmp/hpcdist-slurm)
#   HPCDIST_SLURM_CPUS   CPUs the node advertises; may exceed the real cores (default: max(8, nproc)),
#                        so a few small jobs run side by side
#
# Client commands (sbatch, squeue, scontrol, ...) need SLURM_CONF=$STATE/slurm.conf; `start` also
# links /etc/slurm/slurm.conf to it when that file does not exist, so plain `sbatch` works too.
# `start` clears slurmctld's saved state: job ids restart and old jobs are forgotten.
set -euo pipefail

STATE=${HPCDIST_SLURM_STATE:-/tmp/hpcdist-slurm}
CONF=$STATE/slurm.conf
NODE=$(hostname -s)
PACKAGES=(slurmctld slurmd slurm-client munge libpmix2)
export SLURM_CONF=$CONF

say() { echo "local-cluster: $*" >&2; }
die() { say "error: $*"; exit 2; }

alive() {  # alive PIDFILE: the pid in the file is a running process (a zombie is not)
    [[ -s $1 ]] && pid_alive "$(cat "$1")"
}

pid_alive() {
    kill -0 "$1" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

node_state() {  # idle, mix, alloc, down*, ... or nothing when slurmctld does not answer
    timeout 10 sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n1 || true
}

is_up() {
    alive "$STATE/run/slurmctld.pid" && alive "$STATE/run/slurmd.pid" || return 1
    case $(node_state) in idle|mix|alloc|comp|idle~) return 0 ;; *) return 1 ;; esac
}

install_packages() {
    local missing=()
    for cmd in slurmctld slurmd sbatch munged; do
        command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]] || missing+=("$cmd")
    done
    dpkg -s libpmix2 >/dev/null 2>&1 || missing+=(libpmix2)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "Slurm is not installed (${missing[*]} missing) and installing needs root"
    say "installing ${PACKAGES[*]} (missing: ${missing[*]})"
    # Debian packages start their daemons on install unless policy-rc.d says no (101): we start
    # them ourselves, with our config, so add the policy for the install if the image lacks one.
    local policy_added=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    local rc=0
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"; } \
        >"$STATE/log/apt.log" 2>&1 || rc=$?
    [[ $policy_added -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
    [[ $rc -eq 0 ]] || die "apt-get install failed (exit $rc); see $STATE/log/apt.log"
}

write_config() {
    local cpus=${HPCDIST_SLURM_CPUS:-$(( $(nproc) > 8 ? $(nproc) : 8 ))}
    cat > "$CONF.new" <<EOF
# Written by slurm/local-cluster.sh: a single-node cluster for tests and laptops.
ClusterName=hpcdist-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again only once its old credential expired (default 120 s)
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=${HPCDIST_SLURM_CTLD_PORT:-6817}
SlurmdPort=${HPCDIST_SLURM_SLURMD_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# the node may advertise more CPUs than it has, for oversubscribed tests
SlurmdParameters=config_overrides
MpiDefault=pmi2
MailProg=/bin/true
ReturnToService=2
# minimum intervals slurmctld accepts, so queued and requeued jobs start within seconds
SchedulerParameters=sched_interval=2,bf_interval=5
# an impossible request is refused at submission instead of pending forever
EnforcePartLimits=ALL
# no accounting database here: finished jobs stay visible to scontrol for an hour
MinJobAge=3600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=10
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
    mv "$CONF.new" "$CONF"
    # Open MPI wheels need srun --mpi=pmix; PMIx's default security mode does not work here.
    printf 'PMIxEnv=PMIX_SECURITY_MODE=native\n' > "$STATE/mpi.conf"
    if [[ ! -e /etc/slurm/slurm.conf || $(readlink /etc/slurm/slurm.conf || true) == "$CONF" ]]; then
        mkdir -p /etc/slurm
        ln -sfn "$CONF" /etc/slurm/slurm.conf
        ln -sfn "$STATE/mpi.conf" /etc/slurm/mpi.conf
    fi
}

start_munge() {
    if timeout 5 munge -n 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; then
        return 0  # a munged is already serving the default socket (ours or the system's)
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 755 /run/munge "$STATE/run/munge"
    runuser -u munge -- /usr/sbin/munged --pid-file="$STATE/run/munge/munged.pid" \
        >>"$STATE/log/munged.out" 2>&1 9>&- || die "munged did not start; see $STATE/log/munged.out"
}

cmd_start() {
    mkdir -p "$STATE"/{ctld,spool,run,log}
    exec 9>"$STATE/lock"
    flock 9  # concurrent starts (parallel test sessions) wait for the first one
    if is_up; then
        say "already running ($(node_state)); SLURM_CONF=$CONF"
        return 0
    fi
    local t0=$SECONDS
    install_packages
    write_config
    # the pmix plugin loads libpmix.so, which Debian ships only as libpmix.so.2
    local pmix=/usr/lib/x86_64-linux-gnu/pmix2/lib
    if [[ -e $pmix/libpmix.so.2 && ! -e $pmix/libpmix.so ]]; then ln -s libpmix.so.2 "$pmix/libpmix.so"; fi
    start_munge
    # half-dead leftovers (one daemon up, node down): stop ours and start clean
    stop_daemons
    # (9>&-: the daemons must not inherit the lock)
    /usr/sbin/slurmctld -c -f "$CONF" 9>&- || die "slurmctld did not start; see $STATE/log/slurmctld.log"
    /usr/sbin/slurmd -N "$NODE" -f "$CONF" 9>&- || die "slurmd did not start; see $STATE/log/slurmd.log"
    local state=""
    for _ in $(seq 120); do
        state=$(node_state)
        [[ $state == idle ]] && break
        sleep 0.5
    done
    if [[ $state != idle ]]; then
        die "node $NODE is '${state:-not answering}' after 60 s; see $STATE/log/slurmctld.log and slurmd.log"
    fi
    say "up in $(( SECONDS - t0 )) s: node $NODE idle; SLURM_CONF=$CONF"
}

stop_pidfile() {  # stop_pidfile NAME: TERM the daemon in $STATE/run/NAME.pid, wait, KILL if it stays
    local file=$STATE/run/$1.pid pid
    alive "$file" || { rm -f "$file"; return 0; }
    pid=$(cat "$file")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do pid_alive "$pid" || break; sleep 0.1; done
    pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$file"
}

stop_daemons() {
    stop_pidfile slurmd
    stop_pidfile slurmctld
}

cmd_stop() {
    [[ -d $STATE ]] || { say "not running (no $STATE)"; return 0; }
    exec 9>"$STATE/lock"
    flock 9
    if alive "$STATE/run/slurmctld.pid"; then
        # cancel every job first so no job step outlives its slurmd
        timeout 10 scancel --full --quiet --state=PENDING,RUNNING,SUSPENDED,REQUEUED 2>/dev/null \
            || timeout 10 scancel --quiet -u "$(id -un)" 2>/dev/null || true
        for _ in $(seq 40); do
            [[ -z $(timeout 5 squeue -h -t R,CG -o %i 2>/dev/null) ]] && break
            sleep 0.25
        done
    fi
    stop_daemons
    stop_pidfile munge/munged
    say "stopped"
}

cmd_status() {
    if is_up; then
        say "running: node $NODE $(node_state); SLURM_CONF=$CONF"
        return 0
    fi
    say "not running (state dir $STATE)"
    return 1
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
