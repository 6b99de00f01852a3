#!/bin/sh
# Validation: CVMFS repositories. GLIDEIN_CVMFS is REQUIRED, OPTIONAL (default) or NEVER;
# CVMFS_REPOS_LIST names the repositories (comma separated; default: any under the root);
# GLIDEIN_CVMFS_ROOT is the mount point (default /cvmfs). Publishes HAS_CVMFS and
# HAS_CVMFS_<repo> (dots and dashes as underscores); fails only when REQUIRED and missing.
glidein_config=$1
. "$(grep '^ADD_CONFIG_LINE_SOURCE ' "$glidein_config" | cut -d' ' -f2-)"

mode=$(gconfig_get GLIDEIN_CVMFS)
mode=$(printf '%s' "${mode:-OPTIONAL}" | tr '[:lower:]' '[:upper:]')
root=$(gconfig_get GLIDEIN_CVMFS_ROOT)
root=${root:-/cvmfs}
repos=$(gconfig_get CVMFS_REPOS_LIST | tr ',' ' ')
case $mode in
    NEVER) gconfig_publish HAS_CVMFS C false; echo "check_cvmfs: not checked (GLIDEIN_CVMFS=NEVER)"; exit 0 ;;
    REQUIRED | OPTIONAL | PREFERRED) ;;
    *) echo "check_cvmfs: GLIDEIN_CVMFS must be REQUIRED, OPTIONAL or NEVER, not '$mode'" >&2; exit 1 ;;
esac

has=true missing=
if [ -z "$repos" ]; then
    # any repository mounted (autofs lists nothing until a repository is touched)
    [ -d "$root" ] && [ -n "$(ls -A "$root" 2>/dev/null)" ] || { has=false; missing=" $root"; }
else
    for repo in $repos; do
        attr=HAS_CVMFS_$(printf '%s' "$repo" | tr '.-' '__')
        if [ -n "$(ls -A "$root/$repo/" 2>/dev/null)" ]; then
            gconfig_publish "$attr" C true
        else
            gconfig_publish "$attr" C false
            has=false missing="$missing $repo"
        fi
    done
fi
gconfig_publish HAS_CVMFS C "$has"
if [ "$has" = false ] && [ "$mode" = REQUIRED ]; then
    echo "check_cvmfs: CVMFS is required but missing:$missing (under $root)" >&2
    exit 1
fi
echo "check_cvmfs: HAS_CVMFS=$has${missing:+ (missing:$missing)}"
