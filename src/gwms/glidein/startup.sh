#!/bin/sh
# gwms glidein bootstrap (POSIX sh): fetch the factory's signed stage files, verify every
# one, then exec the pilot (python3) that validates the node and starts the startd agent.
#
#   glidein_startup.sh -web URL -descript INDEX -sign SHA256 -entry ENTRY -collector URL
#       [-factory F] [-name N] [-clientname C] [-clientgroup G] [-cluster C -subcluster P]
#       [-schedd S] [-credid ID] [-uuid U] [-dir auto|TMPDIR|CONDOR|.|PATH] [-hold SECONDS]
#       [-token VALUE | -tokenfile FILE] [-cafile FILE] [-proxy URL] [-v std|dbg]
#       [-param_NAME VALUE ...] [-attr NAME=VALUE ...]
#
# The index's sha256 must equal -sign, and every file's sha256 the index's. On a failure
# the glidein keeps the slot for -hold seconds (default 1200) while its stderr says why,
# then exits: 2 bad arguments, 3 work directory or download failed, 4 checksum mismatch,
# 5 no python3 >= 3.9. Options not listed here are passed on to the pilot.
# Test hooks: GWMS_GLIDEIN_FETCH=curl|wget|python, GWMS_GLIDEIN_SHA256=sha256sum|shasum|python,
# GWMS_GLIDEIN_PYTHON=interpreter.

startup_time=$(date +%s)
startup_iso=$(date -u +%Y-%m-%dT%H:%M:%S+00:00)
echo "Starting glidein_startup.sh at $(date) (${startup_time})"

mode=std web= descript= sign= sign_type=sha256 entry= factory= glidein_name= client_name= client_group=
cluster= subcluster= schedd= cred_id= glidein_uuid= work_dir=auto hold=1200 token= cafile= proxy_url=
collector= glide_dir=

usage() {
    printf 'ERROR: %s\n' "$1" >&2
    printf 'usage: %s -web URL -descript INDEX -sign SHA256 -entry ENTRY -collector URL [options]\n' "$0" >&2
    exit 2
}

# Parse the arguments; rebuild "$@" with every option except -token (kept off the pilot's command line).
n=$#
while [ "$n" -gt 0 ]; do
    opt=$1; shift; n=$((n - 1))
    case $opt in -*) ;; *) usage "unexpected argument '$opt'" ;; esac
    [ "$n" -gt 0 ] || usage "option $opt needs a value"
    val=$1; shift; n=$((n - 1))
    case $opt in
        -token) token=$val; continue ;;
        -v) mode=$val ;;
        -web) web=$val ;;
        -descript) descript=$val ;;
        -sign) sign=$val ;;
        -signtype) sign_type=$val ;;
        -entry) entry=$val ;;
        -factory) factory=$val ;;
        -name) glidein_name=$val ;;
        -clientname) client_name=$val ;;
        -clientgroup) client_group=$val ;;
        -cluster) cluster=$val ;;
        -subcluster) subcluster=$val ;;
        -schedd) schedd=$val ;;
        -credid) cred_id=$val ;;
        -uuid) glidein_uuid=$val ;;
        -dir) work_dir=$val ;;
        -hold) hold=$val ;;
        -cafile) cafile=$val ;;
        -proxy) proxy_url=$val ;;
        -collector) collector=$val ;;
    esac
    set -- "$@" "$opt" "$val"
done
for required in web descript sign entry collector; do
    eval "[ -n \"\$$required\" ]" || usage "-$required is required"
done
[ "$sign_type" = sha256 ] || usage "-signtype must be sha256, not '$sign_type'"
case $hold in '' | *[!0-9.]* | *.*.*) usage "-hold must be a number of seconds, not '$hold'" ;; esac
case $descript in */* | .* | *[!A-Za-z0-9_.+-]*) usage "-descript '$descript' is not a stage file name" ;; esac

# python3 >= 3.9, resolved to the interpreter itself (no wrapper scripts on every call)
PY=${GWMS_GLIDEIN_PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
    PY=
elif real=$("$PY" -c 'import sys
if sys.version_info < (3, 9):
    sys.exit(1)
print(sys.executable)' </dev/null 2>/dev/null); then
    [ -n "$real" ] && [ -x "$real" ] && PY=$real
else
    py_old="$PY ($("$PY" -c 'import sys; print(sys.version.split()[0])' </dev/null 2>&1))"
    PY=
fi

sha_tool=${GWMS_GLIDEIN_SHA256:-}
if [ -z "$sha_tool" ]; then
    if command -v sha256sum >/dev/null 2>&1; then sha_tool=sha256sum
    elif command -v shasum >/dev/null 2>&1; then sha_tool=shasum
    else sha_tool=python; fi
fi
sha256_many() {  # FILE...: one "<sha256>  <file>" line per file, in order
    case $sha_tool in
        sha256sum) sha256sum "$@" </dev/null ;;
        shasum) shasum -a 256 "$@" </dev/null ;;
        *) [ -n "$PY" ] && "$PY" -c 'import hashlib, sys
for name in sys.argv[1:]:
    h = hashlib.sha256()
    with open(name, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    print("%s  %s" % (h.hexdigest(), name))' "$@" </dev/null ;;
    esac
}
sha256_of() { sha256_many "$1" | cut -d' ' -f1; }

fetch_tool=${GWMS_GLIDEIN_FETCH:-}
if [ -z "$fetch_tool" ]; then
    if command -v curl >/dev/null 2>&1; then fetch_tool=curl
    elif command -v wget >/dev/null 2>&1; then fetch_tool=wget
    else fetch_tool=python; fi
fi
with_proxy() {
    if [ -n "$proxy_url" ] && [ "$proxy_url" != None ]; then
        http_proxy=$proxy_url https_proxy=$proxy_url HTTPS_PROXY=$proxy_url "$@"
    else
        "$@"
    fi
}
fetch() {  # URL DEST [URL DEST ...]: with one process where the tool allows
    case $fetch_tool in
        curl) n=$#
              while [ "$n" -gt 0 ]; do set -- "$@" -o "$2" "$1"; shift 2; n=$((n - 2)); done
              if [ -n "$cafile" ]; then set -- --cacert "$cafile" "$@"; fi
              with_proxy curl -fsSL --retry 2 --connect-timeout 30 --max-time 900 "$@" </dev/null ;;
        wget) while [ $# -gt 0 ]; do
                  if [ -n "$cafile" ]; then
                      with_proxy wget -q -T 60 -t 3 --ca-certificate="$cafile" -O "$2" "$1" </dev/null || return 1
                  else
                      with_proxy wget -q -T 60 -t 3 -O "$2" "$1" </dev/null || return 1
                  fi
                  shift 2
              done ;;
        *) [ -n "$PY" ] && with_proxy "$PY" -c 'import os, ssl, sys, urllib.request
cafile = os.environ.get("GWMS_FETCH_CAFILE") or None
args = sys.argv[1:]
for url, dest in zip(args[::2], args[1::2]):
    ctx = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    with urllib.request.urlopen(url, timeout=60, context=ctx) as r, open(dest, "wb") as f:
        f.write(r.read())' "$@" </dev/null ;;
    esac
}
GWMS_FETCH_CAFILE=$cafile
export GWMS_FETCH_CAFILE

script_checksum="$(sha256_of "$0" 2>/dev/null)  glidein_startup.sh"
if [ -z "$glidein_uuid" ]; then
    glidein_uuid=$(cat /proc/sys/kernel/random/uuid 2>/dev/null || uuidgen 2>/dev/null ||
                   { [ -n "$PY" ] && "$PY" -c 'import uuid; print(uuid.uuid4())'; })
fi
debug_mode=0; [ "$mode" = dbg ] && debug_mode=1
header() { printf "%-18s= '%s'\n" "$1" "$2"; }
header script_checksum "$script_checksum"
header debug_mode "$debug_mode"
header condorg_cluster "$cluster"
header condorg_subcluster "$subcluster"
header condorg_schedd "$schedd"
header glidein_uuid "$glidein_uuid"
header glidein_credential_id "$cred_id"
header glidein_factory "$factory"
header glidein_name "$glidein_name"
header glidein_entry "$entry"
header client_name "$client_name"
header client_group "$client_group"
header multi_glidein ""
header work_dir "$work_dir"
header web_dir "$web"
header sign_type "$sign_type"
header proxy_url "${proxy_url:-None}"
header descript_fname "$descript"
header descript_entry_fname "$descript"
header sign_id "$sign"
header sign_entry_id "$sign"
echo
echo "Running on $(uname -n)"
echo "System: $(uname -a)"
if [ -r /etc/redhat-release ]; then
    echo "Release: $(cat /etc/redhat-release)"
elif [ -r /etc/os-release ]; then
    echo "Release: $(. /etc/os-release 2>/dev/null; printf '%s' "${PRETTY_NAME:-unknown}")"
fi
echo "As: $(id)"
echo "PID: $$"
echo

xml_escape() { printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'; }

fail() {  # CODE CATEGORY REASON: report, keep the slot for $hold seconds, then exit CODE
    code=$1 category=$2 reason=$3
    printf 'ERROR: %s\n' "$reason" >&2
    printf '=== Glidein failed: %s ===\n' "$reason"
    case $hold in 0 | 0.0 | 0.) ;; *)
        printf 'Keeping the slot for %s s before exiting (failure: %s)\n' "$hold" "$reason" >&2
        sleep "$hold" &
        sleep_pid=$!
        trap 'kill $sleep_pid 2>/dev/null' TERM INT HUP
        wait $sleep_pid
        trap - TERM INT HUP ;;
    esac
    end_time=$(date +%s)
    end_iso=$(date -u +%Y-%m-%dT%H:%M:%S+00:00)
    echo "=== Glidein ending $(date) (${end_time}) with code ${code} after $((end_time - startup_time)) ==="
    echo
    echo "=== XML description of glidein activity ==="
    cat <<EOF
<?xml version="1.0"?>
<OSGTestResult id="glidein_startup.sh" version="4.3.1">
  <operatingenvironment>
    <env name="cwd">$(xml_escape "${glide_dir:-$(pwd)}")</env>
    <env name="hostname">$(xml_escape "$(uname -n)")</env>
  </operatingenvironment>
  <test>
    <cmd>glidein_startup.sh</cmd>
    <tStart>${startup_iso}</tStart>
    <tEnd>${end_iso}</tEnd>
  </test>
  <result>
    <status>ERROR</status>
    <metric name="failure" ts="${end_iso}" uri="local">${category}</metric>
    <detail>$(xml_escape "$reason")</detail>
  </result>
</OSGTestResult>
EOF
    echo "=== End XML description of glidein activity ==="
    [ -n "$glide_dir" ] && rm -rf "$glide_dir"
    exit "$code"
}

stopped() { hold=0; fail $((128 + $1)) Signal "stopped by signal $2 before the pilot started"; }
trap 'stopped 15 TERM' TERM
trap 'stopped 2 INT' INT
trap 'stopped 1 HUP' HUP

if [ -z "$PY" ]; then
    fail 5 WN_Resource "no usable python3 (>= 3.9) on this node${py_old:+: found $py_old}"
fi

# The work directory.
case $work_dir in
    auto) base=${_CONDOR_SCRATCH_DIR:-${TMPDIR:-$(pwd)}} ;;
    TMPDIR) base=$TMPDIR ;;
    CONDOR) base=$_CONDOR_SCRATCH_DIR ;;
    .) base=$(pwd) ;;
    /*) base=$work_dir ;;
    *) fail 2 Config "-dir must be auto, TMPDIR, CONDOR, . or an absolute path, not '$work_dir'" ;;
esac
[ -n "$base" ] && [ -d "$base" ] || fail 3 WN_Resource "work directory '$base' (-dir $work_dir) does not exist"
glide_dir=$(mktemp -d "$base/glide_XXXXXX" 2>/dev/null) || glide_dir=
[ -n "$glide_dir" ] || fail 3 WN_Resource "cannot create a directory in '$base'"
echo "Work dir: $glide_dir"

if [ -n "$token" ]; then
    (umask 077; printf '%s\n' "$token" >"$glide_dir/token") || fail 3 WN_Resource "cannot write the token file"
    token=
    set -- "$@" -tokenfile "$glide_dir/token"
elif [ -n "${GLIDEIN_TOKEN:-}" ]; then
    (umask 077; printf '%s\n' "$GLIDEIN_TOKEN" >"$glide_dir/token") || fail 3 WN_Resource "cannot write the token file"
    set -- "$@" -tokenfile "$glide_dir/token"
fi
unset GLIDEIN_TOKEN
# The log-push token (see gwms/glidein/logpush.py) goes the same way: a 0600 file, not the environment.
if [ -n "${GLIDEIN_LOG_TOKEN:-}" ]; then
    (umask 077; printf '%s\n' "$GLIDEIN_LOG_TOKEN" >"$glide_dir/log_token") || fail 3 WN_Resource "cannot write the log token file"
    set -- "$@" -logtokenfile "$glide_dir/log_token"
fi
unset GLIDEIN_LOG_TOKEN

# The signed file list, then every file of this entry.
index=$glide_dir/stage_index
fetch "$web/$descript" "$index" || fail 3 Network "cannot fetch the stage file list $web/$descript (with $fetch_tool)"
got=$(sha256_of "$index")
[ "$got" = "$sign" ] || fail 4 Corruption "signature check failed: stage file list $descript has sha256 $got, expected $sign"
[ "$(head -n 1 "$index")" = "# gwms stage index 1" ] || fail 4 Corruption "$descript is not a gwms stage index"
# Which files this entry needs (names checked), fetched in one go, then every sha256 checked.
plan=$glide_dir/stage_plan
: >"$plan"
count=0 agent=
while read -r f_sha f_name f_local f_kind f_scope; do
    case $f_sha in '' | '#'*) continue ;; esac
    [ "$f_scope" = main ] || [ "$f_scope" = "entry:$entry" ] || continue
    [ "$f_kind" = startup ] && continue
    case $f_name/$f_local in
        /* | */ | *//* | *..* | .* | */.* | *[!A-Za-z0-9_.+/-]*) fail 4 Corruption "unsafe file name in $descript: $f_name $f_local" ;;
    esac
    case $f_sha in *[!0-9a-f]*) fail 4 Corruption "bad sha256 in $descript for $f_name" ;; esac
    dest=$glide_dir/$f_local
    mkdir -p "${dest%/*}" || fail 3 WN_Resource "cannot create ${dest%/*}"
    printf '%s %s %s\n' "$f_sha" "$f_local" "$f_name" >>"$plan"
    [ "$f_kind" = agent ] && agent=$f_local
    count=$((count + 1))
done <"$index"
[ -n "$agent" ] || fail 4 Corruption "$descript names no startd agent"

fetch_plan() {  # every file of the plan, one fetch call (the positional parameters are the function's)
    set --
    while read -r p_sha p_local p_name; do set -- "$@" "$web/$p_name" "$glide_dir/$p_local"; done <"$plan"
    fetch "$@"
}
hash_plan() {  # "<sha256>  <local path>" of every file of the plan, in order
    set --
    while read -r p_sha p_local p_name; do set -- "$@" "$p_local"; done <"$plan"
    (cd "$glide_dir" && sha256_many "$@")
}
fetch_plan
while read -r p_sha p_local p_name; do
    [ -f "$glide_dir/$p_local" ] || fail 3 Network "cannot fetch $web/$p_name (with $fetch_tool)"
done <"$plan"
hash_plan >"$glide_dir/stage_hashes" 2>/dev/null
while read -r p_sha p_local p_name <&3; do
    read -r got got_local <&4 || got="(none)"
    [ "$got" = "$p_sha" ] && [ "$got_local" = "$p_local" ] ||
        fail 4 Corruption "signature check failed: $p_name has sha256 $got, expected $p_sha (from $descript)"
done 3<"$plan" 4<"$glide_dir/stage_hashes"
: >"$glide_dir/lib/gwms/__init__.py"
[ -f "$glide_dir/lib/gwms/glidein/__init__.py" ] || : >"$glide_dir/lib/gwms/glidein/__init__.py"
echo "Fetched and verified $count files from $web ($descript, with $fetch_tool and $sha_tool)"

exec "$PY" "$glide_dir/lib/gwms/glidein/pilot.py" -startup-time "$startup_time" -glide-dir "$glide_dir" \
    -uuid "$glidein_uuid" -agent "$glide_dir/$agent" "$@"
