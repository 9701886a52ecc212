#!/usr/bin/env bash
# A single-node SLURM cluster on this machine (Debian's slurm-wlm + munge): one CPU partition "cpu", munge auth.
#
#   scripts/slurm_cluster.sh start    # installs the packages when missing (root + apt-get), starts munged,
#                                     # slurmctld and slurmd, waits until the node takes jobs
#   scripts/slurm_cluster.sh status   # exit 0 when the cluster takes jobs
#   scripts/slurm_cluster.sh stop
#
# For tests and trying the SLURM launcher (`hydra/launcher=slurm`) on one machine; not a production setup.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by batchbald-repro scripts/slurm_cluster.sh"
HOST=$(hostname -s)
STATE=/var/lib/slurm
LOGS=/var/log/slurm

say() { echo "slurm_cluster: $*" >&2; }

is_up() {
    command -v sinfo >/dev/null 2>&1 || return 1
    local state
    state=$(timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -n1) || return 1
    [[ $state == idle* || $state == mixed* || $state == allocated* || $state == completing* ]]
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        say "slurm-wlm and munge are not installed and cannot be installed here (needs root and apt-get)"
        exit 1
    fi
    say "installing slurm-wlm and munge with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || {
        apt-get update -q >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
    }
}

write_conf() {
    if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
        say "$CONF exists and is not ours: using it as it is"
        return 0
    fi
    local cpus mem
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$CONF_DIR" "$STATE/slurmctld" "$STATE/slurmd" "$LOGS"
    cat >"$CONF" <<CONF
$MARK
ClusterName=batchbald
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobRequeue=1
KillWait=5
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=$STATE/slurmd
StateSaveLocation=$STATE/slurmctld
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$HOST CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
    echo "# no cgroups in containers" >"$CONF_DIR/cgroup.conf"
}

start() {
    if is_up; then
        say "already running"
        return 0
    fi
    install_packages
    write_conf
    if ! pgrep -x munged >/dev/null; then
        mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
        [[ -s /etc/munge/munge.key ]] || (umask 077; dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; chown munge:munge /etc/munge/munge.key)
        if id munge >/dev/null 2>&1; then
            runuser -u munge -- /usr/sbin/munged
        else
            /usr/sbin/munged --force
        fi
    fi
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 60); do
        if is_up; then
            say "up: partition cpu on $HOST ($(nproc) CPUs)"
            return 0
        fi
        timeout 10 scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    say "did not come up in 60 s; logs in $LOGS"
    exit 1
}

stop() {
    for d in slurmd slurmctld munged; do
        pkill -x "$d" 2>/dev/null || true
    done
    for _ in $(seq 20); do
        pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || { say "stopped"; return 0; }
        sleep 0.5
    done
    pkill -9 -x slurmd slurmctld 2>/dev/null || true
    say "stopped"
}

case ${1:-} in
start) start ;;
stop) stop ;;
status)
    if is_up; then
        sinfo
        exit 0
    fi
    say "not running"
    exit 1
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
