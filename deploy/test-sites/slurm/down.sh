#!/bin/bash
# Stop the single-node Slurm cluster started by up.sh, by PID only.
# Jobs still queued or running are cancelled first (so that no job step outlives slurmd);
# set GWMS_SLURM_KEEP_JOBS=1 to skip that. Daemons this script did not start are left alone.
set -uo pipefail
PIDDIR=${GWMS_SLURM_PIDDIR:-/run/gwms-test-slurm}

t() { echo "[slurm-site $(date +%T)] $*"; }
running() {   # running PID: the process exists and is not a zombie
    [ -r "/proc/$1/stat" ] && ! awk '{ exit ($3 != "Z") }' "/proc/$1/stat" 2>/dev/null
}
alive() { [ -f "$PIDDIR/$1.pid" ] && running "$(cat "$PIDDIR/$1.pid")"; }
stop() {   # stop TIMEOUT_S NAME...: SIGTERM all of them, wait, SIGKILL what is left
    local limit=$1 name pid left; shift
    local -A pids=()
    for name in "$@"; do
        [ -f "$PIDDIR/$name.pid" ] || continue
        pid=$(cat "$PIDDIR/$name.pid")
        if running "$pid" && kill "$pid" 2>/dev/null; then pids[$name]=$pid; fi
        rm -f "$PIDDIR/$name.pid"
    done
    for _ in $(seq $(( limit * 10 ))); do
        left=0
        for name in "${!pids[@]}"; do running "${pids[$name]}" && left=1; done
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    for name in "${!pids[@]}"; do
        if running "${pids[$name]}"; then
            t "$name (${pids[$name]}) ignored SIGTERM for $limit s, sending SIGKILL"
            kill -9 "${pids[$name]}" 2>/dev/null
        fi
        t "stopped $name (${pids[$name]})"
    done
}

if [ "${GWMS_SLURM_KEEP_JOBS:-0}" != 1 ] && alive slurmctld; then
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        t "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null
        for _ in $(seq 150); do   # at most 15 s (KillWait=5)
            [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.1
        done
    fi
fi
stop 20 slurmd slurmctld
stop 10 munged
exit 0
