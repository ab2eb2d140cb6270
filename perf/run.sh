#!/usr/bin/env bash
# Records one full rill-bench run: builds the release preset, runs every scenario and writes
#   perf/results/<sha>.<cpu>.<date>.json   (rill-bench --json)
#   perf/results/<sha>.<cpu>.<date>.txt    (the printed tables)
# Extra arguments go to rill-bench (for example --quick or --scenario spsc_throughput).
# Run it on an otherwise idle machine; `nice -n -20` (as root) keeps unrelated work off the pinned CPUs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
# RILL_BENCH_BUILD_DIR picks another (release) build directory than the preset's build/release.
build=${RILL_BENCH_BUILD_DIR:-}
if [[ -z $build ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release --target rill-bench
  build=build/release
else
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target rill-bench
fi

sha=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo | tr -cs 'A-Za-z0-9' '-' | sed 's/-*$//')
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p perf/results
base=perf/results/$sha.${cpu:-unknown}.$stamp
"$build/tools/rill-bench" --json "$base.json" "$@" | tee "$base.txt"
echo "recorded $base.json (charts: perf/charts.py $base.json docs/charts)"
