#!/usr/bin/env bash
# Prepare this machine for tests/runmodes (the container image and the systemd unit, run for
# real): the Debian packages (podman, buildah, runc, systemd-container, debootstrap), a
# containers.conf for a machine without a container daemon or systemd as PID 1, and two Debian
# bookworm roots made with debootstrap from the Debian mirror this machine's apt sources name:
#   base/    python3 + venv: imported into podman as the Dockerfile's PYTHON_IMAGE
#   boot/    the same plus systemd and dbus: booted with `systemd-nspawn --boot`
# Everything is cached in $ALICERTD_RUNMODES_CACHE (default /var/cache/alicertd-runmodes) and
# rebuilt only when missing, so the second run costs seconds. Needs root. Prints the cache path.
set -euo pipefail
cache=${ALICERTD_RUNMODES_CACHE:-/var/cache/alicertd-runmodes}
suite=bookworm
base_image=localhost/alicertd-base:$suite
log() { printf 'runmodes-setup: %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || { log "needs root"; exit 3; }
mkdir -p "$cache"

missing=()
for pair in podman:podman buildah:buildah runc:runc systemd-nspawn:systemd-container debootstrap:debootstrap; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# podman without systemd as PID 1 or a settable RLIMIT: runc, cgroupfs, no default ulimits,
# events to a file. Used through CONTAINERS_CONF; the machine's own files are not touched.
cat >"$cache/containers.conf" <<CONF
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF

# The Debian mirror: the first "deb" source for $suite in /etc/apt/sources.list{,.d/*.list}
# (one-line format) or /etc/apt/sources.list.d/*.sources (deb822).
mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v s="$suite" '$1=="deb" { i=2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                                       if ($(i+1)==s) { print $i; exit } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v s="$suite" 'BEGIN { RS=""; FS="\n" }
            { t=""; u=""; ok=0
              for (n=1; n<=NF; n++) {
                  if ($n ~ /^Types:/) t=$n
                  if ($n ~ /^URIs:/) { split($n, a, /[ \t]+/); u=a[2] }
                  if ($n ~ /^Suites:/) { m=split($n, b, /[ \t]+/); for (k=2; k<=m; k++) if (b[k]==s) ok=1 }
              }
              if (t ~ /[ \t]deb([ \t]|$)/ && ok && u!="") { print u; exit } }' "$f"
    done
}

debian_root() {  # name, extra packages
    local dir="$cache/$1" tmp="$cache/$1.new" url
    [ -x "$dir/usr/bin/python3" ] && return 0
    url=$(mirror | head -n1)
    [ -n "$url" ] || { log "no Debian $suite mirror in /etc/apt/sources.list{,.d}"; exit 3; }
    log "debootstrap $suite into $dir (packages: $2)"
    rm -rf "$tmp"
    mkdir -p "$cache/debs"
    debootstrap --variant=minbase --cache-dir="$cache/debs" --include="$2" "$suite" "$tmp" "$url" >&2
    rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/*.bin
    mv "$tmp" "$dir"
}

base_pkgs=python3,python3-venv,python-is-python3,ca-certificates
debian_root base "$base_pkgs"
debian_root boot "$base_pkgs,systemd,dbus"

export CONTAINERS_CONF="$cache/containers.conf"
if ! podman image exists "$base_image"; then
    log "podman import $base_image"
    tar -C "$cache/base" -c . | podman import --quiet - "$base_image" >&2
fi
echo "$cache"
