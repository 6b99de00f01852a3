#!/bin/bash
# Smoke test of the site started by up.sh: one job through sbatch -> RUNNING -> COMPLETED,
# then 8 jobs at once that must all be RUNNING together (the advertised CPUs are virtual).
# Every wait is bounded; exits non-zero with the reason on failure.
set -euo pipefail
PARALLEL=${PARALLEL:-8}
OUT=$(mktemp -d /tmp/gwms-slurm-smoke.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
now() { date +%s.%N; }
el() { awk -v a="$(now)" -v b="$1" 'BEGIN{printf "%.2f", a-b}'; }
die() { echo "smoke: FAILED: $*" >&2; exit 1; }
wait_for() {   # wait_for TIMEOUT_S DESCRIPTION COMMAND...
    local limit=$1 what=$2; shift 2
    local end; end=$(awk -v a="$(now)" -v b="$limit" 'BEGIN{printf "%.3f", a+b}')
    until "$@"; do
        awk -v a="$(now)" -v b="$end" 'BEGIN{exit !(a>b)}' && die "$what not reached in ${limit}s"
        sleep 0.05
    done
}
state() { squeue -h -j "$1" -o %T 2>/dev/null || true; }

sinfo -h -o '%T' | grep -qE '^(idle|mixed|allocated)' || die "no usable node: $(sinfo 2>&1)"

T0=$(now)
JID=$(sbatch --parsable -D "$OUT" -o "$OUT/one-%j.out" --wrap 'echo hello-from-slurm; sleep 1')
JID=${JID%%;*}
is_running() { [ "$(state "$JID")" = RUNNING ]; }
wait_for 20 "job $JID RUNNING" is_running
echo "smoke: job $JID RUNNING after $(el "$T0") s"
is_gone() { [ -z "$(state "$JID")" ]; }
wait_for 30 "job $JID leaving the queue" is_gone
JS=$(scontrol show job "$JID" | grep -oE 'JobState=\S+' || true)
[ "$JS" = JobState=COMPLETED ] || die "job $JID ended with $JS"
grep -q hello-from-slurm "$OUT/one-$JID.out" || die "job $JID output missing"
echo "smoke: job $JID $JS after $(el "$T0") s"

T0=$(now)
IDS=()
for i in $(seq "$PARALLEL"); do
    j=$(sbatch --parsable -D "$OUT" -o /dev/null --wrap 'sleep 4'); IDS+=("${j%%;*}")
done
LIST=$(IFS=,; echo "${IDS[*]}")
all_running() { [ "$(squeue -h -j "$LIST" -t RUNNING -o %i | wc -l)" -eq "$PARALLEL" ]; }
wait_for 20 "$PARALLEL jobs RUNNING together" all_running
echo "smoke: $PARALLEL jobs RUNNING together after $(el "$T0") s"
none_left() { [ -z "$(squeue -h -j "$LIST" -o %i 2>/dev/null)" ]; }
wait_for 30 "$PARALLEL jobs done" none_left
echo "smoke: $PARALLEL jobs done after $(el "$T0") s"
echo "SMOKE OK"
