#!/bin/bash
# Start a single-node Slurm cluster on 127.0.0.1 for gwms's tests and CI.
#
#   munged + slurmctld + slurmd, node "localhost" (NodeAddr 127.0.0.1), partition "debug",
#   SLURM_CPUS (default 64) CPUs advertised on any core count so that several pilots run
#   at once, scheduler tuned for fast starts (sbatch -> RUNNING in well under a second).
#
# Debian 12, root, no systemd. Idempotent: a site that is already up is left alone.
# Installs slurm-wlm and munge with apt-get when they are missing (set GWMS_SLURM_INSTALL=0
# to forbid that). Daemon PIDs go to $PIDDIR; down.sh stops them by PID.
# Recipe and measurements: shared/spec/test-sites.md section 1; see README.md here.
set -euo pipefail

PIDDIR=${GWMS_SLURM_PIDDIR:-/run/gwms-test-slurm}
SLURM_CPUS=${SLURM_CPUS:-64}            # advertised CPUs (oversubscription: pilots mostly sleep)
INSTALL=${GWMS_SLURM_INSTALL:-1}
CONF=/etc/slurm/slurm.conf
MARK="# written by gwms deploy/test-sites/slurm/up.sh"
LOGDIR=/var/log/slurm
START_TIMEOUT=${GWMS_SLURM_START_TIMEOUT:-60}   # seconds to wait for the node to become idle

t() { echo "[slurm-site $(date +%T)] $*"; }
die() { echo "[slurm-site] ERROR: $*" >&2; exit 1; }
alive() {   # alive NAME: the daemon whose PID we recorded runs (zombies do not count)
    local pid
    pid=$(cat "$PIDDIR/$1.pid" 2>/dev/null) || return 1
    [ -r "/proc/$pid/stat" ] && ! awk '{ exit ($3 != "Z") }' "/proc/$pid/stat"
}
munge_works() {   # bounded: the munge client retries for ~15 s when munged is gone
    timeout 3 munge -n 2>/dev/null | timeout 3 unmunge >/dev/null 2>&1
}
ctld_listening() {   # fast: sinfo takes ~9 s to give up on a controller that is not there
    (exec 3<>/dev/tcp/127.0.0.1/6817) 2>/dev/null
}
node_ready() {   # the node answers and can take jobs
    ctld_listening && timeout 15 sinfo -h -n localhost -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

[ "$(id -u)" = 0 ] || die "must run as root (it starts munged, slurmctld and slurmd)"

# ---------------- packages ----------------
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
        || ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    [ "$INSTALL" = 1 ] || die "slurm-wlm/munge are not installed and GWMS_SLURM_INSTALL=0"
    command -v apt-get >/dev/null 2>&1 || die "slurm-wlm/munge are not installed and there is no apt-get"
    t "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

mkdir -p "$PIDDIR"

# ---------------- already up? ----------------
# (every Slurm command needs munge: without it sinfo would hang until its timeout)
if ! munge_works; then
    :
elif alive slurmctld && alive slurmd && node_ready; then
    t "already running (slurmctld $(cat "$PIDDIR/slurmctld.pid"), slurmd $(cat "$PIDDIR/slurmd.pid"))"
    exit 0
elif ! alive slurmctld && ! alive slurmd && node_ready; then
    t "a Slurm cluster not started by this script is answering; using it as it is"
    exit 0
fi

# ---------------- munge ----------------
if munge_works; then
    t "munge already works"
    alive munged || rm -f "$PIDDIR/munged.pid"   # not ours (or gone): never signal it later
else
    t "starting munged"
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
    # --force: start even if a stale socket from a killed munged is left behind
    runuser -u munge -- /usr/sbin/munged --force       # daemonizes, writes /run/munge/munged.pid
    deadline=$(( $(date +%s) + 15 ))
    until munge_works; do
        [ "$(date +%s)" -ge "$deadline" ] && die "munged does not answer (see /var/log/munge/munged.log)"
        sleep 0.1
    done
    cp /run/munge/munged.pid "$PIDDIR/munged.pid"
fi

# ---------------- Slurm ----------------
# Stop a half-started site of ours (one daemon dead) before starting afresh.
for d in slurmd slurmctld; do
    if alive "$d"; then
        t "stopping leftover $d $(cat "$PIDDIR/$d.pid")"
        pid=$(cat "$PIDDIR/$d.pid"); kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do alive "$d" || break; sleep 0.1; done
        if alive "$d"; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$PIDDIR/$d.pid"
done

t "writing $CONF"
install -d /var/spool/slurmctld /var/spool/slurmd "$LOGDIR" /etc/slurm
if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    cp -p "$CONF" "$CONF.before-gwms.$(date +%s)"
    t "kept the previous $CONF as $CONF.before-gwms.*"
fi
# RealMemory: the machine's memory in MB less 1 GB (/proc, not free(1): procps may be absent)
MEM=$(awk '/^MemTotal:/ { m = int($2 / 1024) - 1024; print (m < 512 ? 512 : m) }' /proc/meminfo)
# Slurm wants comments on lines of their own.
cat > "$CONF" <<EOF
$MARK
ClusterName=gwmstest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# slurmctld and slurmd bind 127.0.0.1 only
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# no slurmdbd: sacct is unavailable, finished jobs are read with scontrol (MinJobAge below)
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGDIR/jobcomp.log
SchedulerType=sched/backfill
# sbatch -> RUNNING in ~0.3 s instead of ~3 s
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# lets the node advertise more CPUs than the machine has
SlurmdParameters=config_overrides
ReturnToService=2
# finished jobs stay visible to scontrol for 5 minutes
MinJobAge=300
# scancel: SIGKILL 5 s after SIGTERM (default 30 s)
KillWait=5
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$SLURM_CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

t "starting slurmctld and slurmd"
# -D: foreground (we keep the PID ourselves); -i: ignore errors in saved state.
# Saved state is kept, so job ids keep growing across restarts (no id is reused).
nohup slurmctld -D -i >"$LOGDIR/slurmctld.stdout" 2>&1 &
echo $! > "$PIDDIR/slurmctld.pid"
# -N localhost: the machine's hostname need not be the NodeName
nohup slurmd -D -N localhost >"$LOGDIR/slurmd.stdout" 2>&1 &
echo $! > "$PIDDIR/slurmd.pid"

deadline=$(( $(date +%s) + START_TIMEOUT ))
until node_ready; do
    if ! alive slurmctld; then tail -20 "$LOGDIR/slurmctld.stdout" "$LOGDIR/slurmctld.log" >&2 || true; die "slurmctld exited"; fi
    if ! alive slurmd; then tail -20 "$LOGDIR/slurmd.stdout" "$LOGDIR/slurmd.log" >&2 || true; die "slurmd exited"; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        sinfo >&2 || true
        die "node not idle after ${START_TIMEOUT}s (logs in $LOGDIR)"
    fi
    sleep 0.1
done

# The controller's first scheduling pass comes ~3 s after it starts: wait for it with one
# tiny job, so that "up" means a job submitted now starts within about a second.
t "warm-up job"
WJ=$(sbatch --parsable -J gwms-warmup -o /dev/null -D /tmp --wrap true)
WJ=${WJ%%;*}
deadline=$(( $(date +%s) + START_TIMEOUT ))
while [ "$(squeue -h -j "$WJ" -o %T 2>/dev/null)" = PENDING ]; do
    [ "$(date +%s)" -ge "$deadline" ] && die "warm-up job $WJ still pending after ${START_TIMEOUT}s"
    sleep 0.1
done
t "up: $(sinfo -h -o '%P %D nodes, %c CPUs, state %T')"
