#!/bin/sh
# gwms pilot ${pilot_id}: batch script written by the gwms factory's slurm backend.
${directives}

${environment}
exec ${command}
