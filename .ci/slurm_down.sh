#!/usr/bin/env bash
# Tear down what .ci/slurm_up.sh started: cancel jobs, stop slurmd, slurmctld and munged (by their pid files).
set -u
[ "$(id -u)" = 0 ] || exit 0
scancel --full --quiet --user root 2>/dev/null || true
for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
    if [ -s "$pidfile" ]; then
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
done
exit 0
