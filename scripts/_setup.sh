# Shared set-up for scripts/demo.sh and scripts/test.sh: idempotent, safe to source.
# Creates .venv with Python >= 3.11 and installs CitySOC (and extras) into it when
# setup.cfg changed since the last install; installs Debian packages when missing.

set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

log() { printf '[citysoc setup] %s\n' "$*" >&2; }

apt_install() {
    # apt_install PKG... : install the Debian packages that are missing (root only).
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
        return 1
    fi
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

find_python() {
    for cand in "${PYTHON:-}" python3.11 python3 python; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 &&
           "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$cand"; return 0
        fi
    done
    log "Python 3.11 or newer is required"; return 1
}

ensure_compiler() {
    # ensure_compiler PYTHON : a C compiler and PYTHON's headers, for the optional compiled module
    # (detections/sigma/_hitmask.c); without them the install still works and the Python loop runs.
    local py="$1" include version
    command -v cc >/dev/null 2>&1 || apt_install gcc libc6-dev || log "no C compiler: the detection loop will run in Python (slower)"
    include="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    version="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    [ -f "$include/Python.h" ] || apt_install "python$version-dev" || log "no Python headers: the detection loop will run in Python (slower)"
}

ensure_venv() {
    # ensure_venv [EXTRA] : .venv with CitySOC installed (editable), plus the extra (e.g. test).
    local extra="${1:-}"
    local py; py="$(find_python)"
    if [ ! -x .venv/bin/python ]; then
        log "creating .venv with $py"
        if ! "$py" -m venv .venv 2>/dev/null; then
            rm -rf .venv
            apt_install python3-venv
            "$py" -m venv .venv
        fi
    fi
    local spec="." stamp
    [ -n "$extra" ] && spec=".[$extra]"
    stamp="$(cat setup.cfg pyproject.toml setup.py detections/sigma/_hitmask.c | sha256sum | cut -c1-16)-${extra:-base}"
    if [ "$(cat .venv/.citysoc-installed 2>/dev/null)" != "$stamp" ]; then
        ensure_compiler "$py"
        log "installing CitySOC ${extra:+with [$extra] }into .venv"
        .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
        .venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec" --config-settings editable_mode=lenient
        echo "$stamp" > .venv/.citysoc-installed
    fi
}
