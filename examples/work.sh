#!/bin/sh
# A demo job: say where it ran, work (sleep) a little, and say it is done.
# Arguments: NAME INDEX SECONDS
name=$1
index=$2
seconds=${3:-3}
echo "job=$name.$index site=${GLIDEIN_Site:-unknown} host=$(hostname)"
sleep "$seconds"
echo "job=$name.$index done after ${seconds}s"
