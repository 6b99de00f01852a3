#!/bin/sh
# Validation: the work directory is writable and allows running programs (not noexec).
glidein_config=$1
. "$(grep '^ADD_CONFIG_LINE_SOURCE ' "$glidein_config" | cut -d' ' -f2-)"

dir=$(gconfig_get GLIDEIN_WORK_DIR)
dir=${dir:-.}
probe=$dir/.gwms_probe_$$
if ! printf '#!/bin/sh\nexit 0\n' >"$probe" 2>/dev/null; then
    echo "check_workdir: cannot write in $dir" >&2
    exit 1
fi
chmod 755 "$probe"
if ! "$probe" 2>/dev/null; then
    rm -f "$probe"
    echo "check_workdir: $dir does not allow running programs (mounted noexec?)" >&2
    exit 1
fi
rm -f "$probe"
echo "check_workdir: $dir is writable and executable"
