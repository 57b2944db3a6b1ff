#!/usr/bin/env bash
# Fetch Debian unstable's pebble (>= 2.10: ARI, profiles, retryAfter) by package name, without
# touching the machine's apt configuration: a one-off sources list and apt state in a temp dir,
# then `dpkg-deb -x` into tools/ (ignored by git). Cached: a second call does nothing.
#
# usage: scripts/fetch-pebble.sh [PACKAGE...]     (default: pebble)
# prints the bin directory holding the binaries.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/tools/sid"
pkgs=("$@"); [ ${#pkgs[@]} -gt 0 ] || pkgs=(pebble)

need=()
for p in "${pkgs[@]}"; do
  [ -f "$dest/.fetched-$p" ] || need+=("$p")
done
if [ ${#need[@]} -eq 0 ]; then echo "$dest/usr/bin"; exit 0; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/etc/preferences.d" "$tmp/etc/apt.conf.d"
cat > "$tmp/etc/sid.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$tmp/etc"
      -o "Dir::Etc::sourcelist=/dev/null" -o "Dir::Etc::Preferences=/dev/null"
      -o "Dir::Etc::PreferencesParts=$tmp/etc/preferences.d" -o "Dir::State::Lists=$tmp/lists"
      -o "Dir::Cache=$tmp/cache" -o "Dir::State::status=/var/lib/dpkg/status"
      -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1" -o "Acquire::Languages=none" -o "APT::Sandbox::User=root")
# keep the real list of source parts out: SourceParts points at our temp dir, which holds only sid.
apt-get "${opts[@]}" -qq update >&2
mkdir -p "$dest"
( cd "$tmp" && apt-get "${opts[@]}" -qq download "${need[@]}" >&2 )
for deb in "$tmp"/*.deb; do
  dpkg-deb -x "$deb" "$dest"
done
for p in "${need[@]}"; do touch "$dest/.fetched-$p"; done
echo "$dest/usr/bin"
