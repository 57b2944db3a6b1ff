#!/usr/bin/env bash
# Fetch Debian unstable's pebble (>= 2.10: ARI, profiles, retryAfter) by package name, without
# touching the machine's apt configuration: a one-off sources list and apt state in a temp dir,
# then `dpkg-deb -x` into tools/ (ignored by git). Cached: a second call does nothing.
#
# The mirror is the Debian mirror this machine's apt sources already name (one-line `.list` and
# deb822 `.sources` files alike), with suite `sid`: the script works wherever apt works and names
# no host itself. "The Debian mirror" is the first enabled `deb` entry whose suites are Debian
# release suites (not -security, -updates, -backports, and not a security archive); its Signed-By
# keyring is kept, else Debian's archive keyring is used.
#
# usage: scripts/fetch-pebble.sh [PACKAGE...]     (default: pebble)
#        scripts/fetch-pebble.sh --print-mirror  (prints "URI KEYRING" of the chosen entry)
# prints the bin directory holding the binaries.
# env:   FETCH_PEBBLE_DEST  where to unpack (default: tools/sid)
#        APT_SOURCES_DIR    read sources from this dir instead of apt's own (sources.list and
#                           sources.list.d/ inside it; for tests)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest="${FETCH_PEBBLE_DEST:-$here/tools/sid}"
default_keyring=/usr/share/keyrings/debian-archive-keyring.gpg

# The files apt reads: Dir::Etc::sourcelist and every *.list / *.sources in Dir::Etc::sourceparts.
source_files() {
  local list parts
  if [ -n "${APT_SOURCES_DIR:-}" ]; then
    list="$APT_SOURCES_DIR/sources.list"; parts="$APT_SOURCES_DIR/sources.list.d"
  else
    eval "$(apt-config shell list Dir::Etc::sourcelist/f parts Dir::Etc::sourceparts/d)"
    list=${list:-/etc/apt/sources.list}; parts=${parts:-/etc/apt/sources.list.d/}
  fi
  [ -f "$list" ] && printf '%s\n' "$list"
  if [ -d "$parts" ]; then
    find "$parts" -maxdepth 1 -type f \( -name '*.list' -o -name '*.sources' \) | LC_ALL=C sort
  fi
  return 0
}

# "URI KEYRING" of the first Debian release entry, from one-line and deb822 files.
debian_mirror() {
  local f out
  while IFS= read -r f; do
    case "$f" in
      *.sources) out=$(awk -v def="$default_keyring" '
          function flush() {
            if (types ~ /(^| )deb( |$)/ && enabled != "no" && uri != "" && good(suites, uri)) {
              print uri, (key != "" ? key : def); found = 1; exit
            }
            types = ""; uri = ""; suites = ""; key = ""; enabled = ""
          }
          function good(s, u,   n, a, i) {
            if (u ~ /security/) return 0
            n = split(s, a, /[ \t]+/)
            for (i = 1; i <= n; i++) if (a[i] != "" && a[i] !~ /-(security|updates|backports)$/ && a[i] !~ /\//) return 1
            return 0
          }
          /^[ \t]*#/ { next }
          /^[ \t]*$/ { flush(); next }
          { line = $0; k = tolower(line); sub(/:.*/, "", k); v = line; sub(/^[^:]*:[ \t]*/, "", v); sub(/[ \t]+$/, "", v)
            if (k == "types") types = v; else if (k == "uris") { split(v, u, /[ \t]+/); uri = u[1] }
            else if (k == "suites") suites = v; else if (k == "enabled") enabled = tolower(v)
            else if (k == "signed-by" && v ~ /^\//) key = v }
          END { if (!found) flush() }' "$f") ;;
      *) out=$(awk -v def="$default_keyring" '
          /^[ \t]*deb[ \t]/ {
            key = ""; i = 2
            if ($2 ~ /^\[/) {
              opts = ""
              for (; i <= NF; i++) { opts = opts " " $i; if ($i ~ /\]$/) { i++; break } }
              if (match(opts, /signed-by=[^] ]+/)) key = substr(opts, RSTART + 10, RLENGTH - 10)
            }
            uri = $i; suite = $(i + 1)
            if (uri ~ /security/ || suite ~ /-(security|updates|backports)$/ || suite ~ /\//) next
            print uri, (key != "" ? key : def); exit
          }' "$f") ;;
    esac
    if [ -n "$out" ]; then echo "$out"; return 0; fi
  done < <(source_files)
}

mirror=$(debian_mirror)
if [ -z "$mirror" ]; then
  echo "fetch-pebble: no Debian mirror in this machine's apt sources (sources.list, sources.list.d/*.list|*.sources)" >&2
  exit 1
fi
read -r uri keyring <<<"$mirror"
if [ "${1:-}" = "--print-mirror" ]; then echo "$uri $keyring"; exit 0; fi

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
URIs: $uri
Suites: sid
Components: main
Signed-By: $keyring
SRC
opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$tmp/etc"
      -o "Dir::Etc::sourcelist=/dev/null" -o "Dir::Etc::Preferences=/dev/null"
      -o "Dir::Etc::PreferencesParts=$tmp/etc/preferences.d" -o "Dir::State::Lists=$tmp/lists"
      -o "Dir::Cache=$tmp/cache" -o "Dir::State::status=/var/lib/dpkg/status"
      -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1" -o "Acquire::Languages=none" -o "APT::Sandbox::User=root")
# keep the real list of source parts out: SourceParts points at our temp dir, which holds only sid.
echo "fetch-pebble: ${need[*]} from $uri (suite sid)" >&2
apt-get "${opts[@]}" -qq update >&2
mkdir -p "$dest"
( cd "$tmp" && apt-get "${opts[@]}" -qq download "${need[@]}" >&2 )
for deb in "$tmp"/*.deb; do
  dpkg-deb -x "$deb" "$dest"
done
for p in "${need[@]}"; do touch "$dest/.fetched-$p"; done
echo "$dest/usr/bin"
