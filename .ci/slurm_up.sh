#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on this Debian machine (as root) with two fake GPUs, for the test of
# `snakemake --profile profiles/slurm`. Idempotent: installs what is missing, (re)writes the config, starts
# munged, slurmctld and slurmd unless they run, and waits until the node accepts jobs.
# Exit 77 (the conventional "skip") when not root. Undo with .ci/slurm_down.sh.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "slurm_up: needs root (installs packages, writes /etc/slurm, starts daemons)" >&2
    exit 77
fi
log() { echo "slurm_up: $*" >&2; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null; then
    log "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# munge: one key, the daemon running as user munge
install -d -o munge -g munge -m 0700 /etc/munge
install -d -o munge -g munge -m 0755 /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! [ -S /run/munge/munge.socket.2 ] || ! munge -n >/dev/null 2>&1; then
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --force
fi

# two fake GPUs: character devices (like /dev/null) that GRES can hand out
for i in 0 1; do
    [ -e "/dev/fakegpu$i" ] || mknod "/dev/fakegpu$i" c 1 3
done

# the node's CPU and memory layout as slurmd sees it
layout=$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]* //')
install -d /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=xmrc-ci
SlurmctldHost=$(hostname -s)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=3600
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MessageTimeout=30
# a job past its time limit (or cancelled) gets SIGTERM, then SIGKILL 5 s later (the fault tests wait for it)
KillWait=5
# a batch job requeued after its node failed may start again after 10 s (default 120: the credential lifetime)
AuthInfo=cred_expire=10
DefMemPerCPU=1000
GresTypes=gpu
NodeName=localhost NodeHostname=$(hostname -s) $layout Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
echo "NodeName=localhost Name=gpu File=/dev/fakegpu[0-1]" > /etc/slurm/gres.conf

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! running /run/slurmctld.pid; then
    log "starting slurmctld"
    slurmctld
else
    scontrol reconfigure  # the config above may have changed
fi
if ! running /run/slurmd.pid; then
    log "starting slurmd"
    slurmd -N localhost
fi

for _ in $(seq 60); do
    if sinfo -h -n localhost -o %T 2>/dev/null | grep -qvE '^$'; then break; fi
    sleep 1
done
scontrol update nodename=localhost state=resume 2>/dev/null || true
for _ in $(seq 60); do
    state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
    case "$state" in idle*|mixed*|allocated*) log "node localhost is $state"; exit 0 ;; esac
    sleep 1
done
log "the node did not become idle (state: ${state:-unknown}); see /var/log/slurm/"
exit 1
