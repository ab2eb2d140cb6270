#!/usr/bin/env bash
# Records one full rill-bench run: builds the release preset, runs every scenario and writes
#   perf/results/<sha>.<cpu>.<date>.json   (rill-bench --json)
#   perf/results/<sha>.<cpu>.<date>.txt    (the printed tables)
# Extra arguments go to rill-bench (for example --quick or --scenario spsc_throughput).
# Run it on an otherwise idle machine; `nice -n -20` (as root) keeps unrelated work off the pinned CPUs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
cmake --preset release >/dev/null
cmake --build --preset release --target rill-bench

sha=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo | tr -cs 'A-Za-z0-9' '-' | sed 's/-*$//')
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p perf/results
base=perf/results/$sha.${cpu:-unknown}.$stamp
build/release/tools/rill-bench --json "$base.json" "$@" | tee "$base.txt"
echo "recorded $base.json (charts: perf/charts.py $base.json docs/charts)"
