#!/bin/sh
# Validation: at least GLIDEIN_MIN_DISK_MB (default 1000) MB free in the work directory.
# Publishes GLIDEIN_Disk_Free_MB.
glidein_config=$1
. "$(grep '^ADD_CONFIG_LINE_SOURCE ' "$glidein_config" | cut -d' ' -f2-)"

dir=$(gconfig_get GLIDEIN_WORK_DIR)
dir=${dir:-.}
min=$(gconfig_get GLIDEIN_MIN_DISK_MB)
min=${min:-1000}
case $min in '' | *[!0-9]*) echo "check_disk: GLIDEIN_MIN_DISK_MB must be a whole number of MB, not '$min'" >&2; exit 1 ;; esac
free_kb=$(df -Pk "$dir" 2>/dev/null | awk 'NR == 2 { print $4 }')
case $free_kb in '' | *[!0-9]*) echo "check_disk: cannot tell the free space of $dir" >&2; exit 1 ;; esac
free_mb=$((free_kb / 1024))
if [ "$free_mb" -lt "$min" ]; then
    echo "check_disk: only $free_mb MB free in $dir, $min MB needed" >&2
    exit 1
fi
gconfig_publish GLIDEIN_Disk_Free_MB I "$free_mb"
echo "check_disk: $free_mb MB free in $dir"
