#!/usr/bin/env bash
# Reproduce the Dockerfile's install steps without a Docker engine, to catch a broken image
# build (a missing file in the build context, a wheel that does not install, an entry point
# that does not start) on machines where `docker build` cannot run.
#
#   builder stage:  a fresh venv; `pip wheel` the project from a build context holding only
#                   what the Dockerfile COPYs (as .dockerignore allows); `pip install` that wheel
#   runtime stage:  run from the venv alone, outside the source tree, as the image would:
#                   `alicertd --help` works; `alicertd check-config` exits 0 or 2 without a
#                   traceback, for the bundled example and for a missing config
#
# Needs PyPI (dependencies and the build backend), or a wheel directory in PIP_FIND_LINKS with
# PIP_NO_INDEX=1. Usage: scripts/docker-install-check.sh   (PYTHON=python3.11 to choose).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-}
if [ -z "$python" ]; then
    if command -v python3.11 >/dev/null; then python=python3.11; else python=python3; fi
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/alicertd-docker-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
step() { printf '==> %s\n' "$*"; }
fail() { printf 'docker-install-check: FAIL: %s\n' "$*" >&2; exit 1; }

step "python: $($python -c 'import sys; print(sys.version.split()[0])') (the image uses 3.11)"

# --- build context: exactly the Dockerfile's COPY sources
ctx="$work/src"
mkdir -p "$ctx/config"
for path in pyproject.toml README.md daemon providers sandbox config/alicertd.example.toml; do
    [ -e "$repo/$path" ] || fail "$path is COPYed by the Dockerfile but missing from the repo"
    cp -R "$repo/$path" "$ctx/$path"
done
find "$ctx" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +

# --- builder stage: RUN python -m venv /opt/alicertd && pip wheel && pip install && --help
venv="$work/opt/alicertd"
step "builder: venv, wheel, install"
"$python" -m venv "$venv"
"$venv/bin/pip" wheel -q --no-deps --wheel-dir "$work/wheels" "$ctx"
wheels=("$work"/wheels/alicertd-*.whl)
[ -f "${wheels[0]}" ] || fail "no alicertd wheel was built"
"$venv/bin/pip" install -q "${wheels[0]}"
"$venv/bin/alicertd" --help >/dev/null || fail "alicertd --help failed in the builder stage"

# --- runtime stage: PATH=/opt/alicertd/bin, ALICERTD_CONFIG=/etc/alicertd/config.toml, cwd the volume
etc="$work/etc/alicertd"
mkdir -p "$etc" "$work/var/lib/alicertd"
cp "$ctx/config/alicertd.example.toml" "$etc/config.example.toml"
cd "$work/var/lib/alicertd"
export PATH="$venv/bin:$PATH" ALICERTD_CONFIG="$etc/config.toml"
unset PYTHONPATH

step "runtime: alicertd --help"
out=$(alicertd --help 2>&1) || fail "alicertd --help exited $?: $out"
case "$out" in *usage*|*Usage*) ;; *) fail "alicertd --help printed no usage: $out" ;; esac

installed=$("$venv/bin/python" -c 'import daemon, os; print(os.path.dirname(daemon.__file__))')
case "$installed" in "$venv"/*) ;; *) fail "daemon imported from $installed, not from the venv" ;; esac

check() {  # check-config must answer 0 or 2 and never with a traceback
    local label=$1; shift
    local rc=0
    alicertd "$@" >"$work/out" 2>"$work/err" || rc=$?
    if grep -q "Traceback" "$work/out" "$work/err"; then
        cat "$work/err" >&2
        fail "$label: traceback"
    fi
    [ "$rc" -eq 0 ] || [ "$rc" -eq 2 ] || { cat "$work/err" >&2; fail "$label: exit $rc (want 0 or 2)"; }
    echo "$rc" >"$work/rc"
    local note=""
    [ "$rc" -eq 0 ] || note=" ($(head -n1 "$work/err"))"
    step "runtime: $label -> exit $rc$note"
}
check "check-config (no config mounted)" check-config
check "check-config (bundled example, no credentials)" --config "$etc/config.example.toml" check-config
# with the credentials the example refers to, the bundled example must be valid as shipped
ALIBABA_CLOUD_ACCESS_KEY_ID=dummy-id ALIBABA_CLOUD_ACCESS_KEY_SECRET=dummy-secret \
    check "check-config (bundled example)" --config "$etc/config.example.toml" check-config
[ "$(cat "$work/rc")" -eq 0 ] || { cat "$work/err" >&2; fail "the bundled example config is invalid"; }

step "OK"
