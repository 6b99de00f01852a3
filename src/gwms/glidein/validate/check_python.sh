#!/bin/sh
# Validation: the glidein's python3 is at least GLIDEIN_MIN_PYTHON (default 3.9) and has the
# standard modules the startd agent needs. Publishes GLIDEIN_Python_Version.
glidein_config=$1
. "$(grep '^ADD_CONFIG_LINE_SOURCE ' "$glidein_config" | cut -d' ' -f2-)"

py=$(gconfig_get GLIDEIN_PYTHON)
py=${py:-python3}
min=$(gconfig_get GLIDEIN_MIN_PYTHON)
min=${min:-3.9}
if ! version=$("$py" - "$min" <<'PYEOF' 2>&1
import sys
version = "%d.%d.%d" % tuple(sys.version_info[:3])
want = tuple(int(x) for x in sys.argv[1].split("."))
if tuple(sys.version_info[:len(want)]) < want:
    print("check_python: python %s is older than %s" % (version, sys.argv[1]))
    sys.exit(1)
missing = []
for name in ("ssl", "zlib", "json", "tarfile", "resource", "http.client", "urllib.request", "zipimport"):
    try:
        __import__(name)
    except Exception:
        missing.append(name)
if missing:
    print("check_python: python %s lacks the modules %s" % (version, ", ".join(missing)))
    sys.exit(1)
print(version)
PYEOF
); then
    case $version in check_python:*) echo "$version" >&2 ;; *) echo "check_python: cannot run $py" >&2 ;; esac
    exit 1
fi
gconfig_publish GLIDEIN_Python_Version S "$version"
echo "check_python: python $version ($py)"
