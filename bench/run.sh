#!/usr/bin/env bash
# Run every alicertd benchmark and write bench/RESULTS.md (then print it).
#
# usage: bench/run.sh [--quick]
#   --quick   fewer repetitions and a 15 s (not 60 s) idle period: about 5 minutes, not ~15
#
# Needs the venv (.venv: `make venv`) and Pebble (scripts/fetch-pebble.sh, fetched on first use).
# The peers are set up on first use: certbot from PyPI into bench/work/certbot-venv, lego from
# Debian unstable into tools/sid (scripts/fetch-pebble.sh lego). Everything runs on loopback.
# Per-benchmark logs: bench/work/logs/<name>.log; raw results: bench/work/results/*.json.
set -uo pipefail
cd "$(dirname "$0")/.."

quick=()
case "${1:-}" in
  "") ;;
  --quick) quick=(--quick) ;;
  *) echo "usage: bench/run.sh [--quick]" >&2; exit 2 ;;
esac

py=.venv/bin/python
if [ ! -x "$py" ]; then
  echo "bench/run.sh: $py is missing; create it with 'make venv'" >&2
  exit 2
fi

rm -rf bench/work/results bench/work/logs
mkdir -p bench/work/logs
cut -d' ' -f1-3 /proc/loadavg > bench/work/logs/loadavg.start 2>/dev/null || true
start=$(date +%s)
failed=()
for bench in peers latency propagation steady_state steady_state_lb footprint edge_targets renewal_window \
             acme_throughput; do
  args=("${quick[@]}")
  [ "$bench" = acme_throughput ] && args=()  # the ACME client alone: a few seconds, no --quick
  [ "$bench" = renewal_window ] && args=()   # a simulation of a few seconds: it has no --quick
  echo "=== bench/$bench.py ${args[*]:-}" >&2
  t0=$(date +%s)
  if "$py" "bench/$bench.py" "${args[@]}" > "bench/work/logs/$bench.log" 2>&1; then
    echo "    done in $(( $(date +%s) - t0 )) s" >&2
  else
    echo "    FAILED after $(( $(date +%s) - t0 )) s; last lines of bench/work/logs/$bench.log:" >&2
    tail -n 20 "bench/work/logs/$bench.log" >&2
    failed+=("$bench")
  fi
done

"$py" bench/report.py "${quick[@]}" --failed "${failed[*]:-}" --elapsed "$(( $(date +%s) - start ))"
[ ${#failed[@]} -eq 0 ]
