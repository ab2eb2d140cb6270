#!/usr/bin/env bash
# Counts the instructions of each hot path in perf/callgrind_budget.txt with callgrind and fails when one
# exceeds its budget by more than 5%. Instruction counts do not depend on machine noise, so CI can run it.
#   perf/check_callgrind.sh [PATH_TO_hotpath_perf] [ITERATIONS]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
binary=${1:-$here/../build/release/perf/hotpath_perf}
iterations=${2:-100000}
budget_file=$here/callgrind_budget.txt
tolerance_pct=5

command -v valgrind >/dev/null || { echo "check_callgrind: valgrind is not installed" >&2; exit 1; }
[[ -x $binary ]] || { echo "check_callgrind: $binary is not built" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=0
printf '%-16s %12s %10s %8s  %s\n' path "Ir/iter" budget change verdict
while read -r path budget _; do
  [[ -z $path || $path == \#* ]] && continue
  out=$work/$path.callgrind
  # Only the loop functions (rill_hotpath_*) are counted; set-up and warm-up are not.
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect='rill_hotpath_*' \
    "$binary" "$path" "$iterations" >/dev/null 2>"$work/$path.log" ||
    { echo "check_callgrind: $path failed to run:" >&2; cat "$work/$path.log" >&2; exit 1; }
  total=$(awk '/^summary:/ {print $2}' "$out")
  [[ -n $total ]] || { echo "check_callgrind: no summary for $path" >&2; exit 1; }
  verdict=$(awk -v t="$total" -v n="$iterations" -v b="$budget" -v tol="$tolerance_pct" -v p="$path" 'BEGIN {
    per = t / n; change = (per - b) / b * 100;
    status = per > b * (1 + tol / 100) ? "OVER BUDGET" \
           : per > b + 0.5                ? "ok (over the budget, within the tolerance: raise it with a reason or trim the path)" \
           : per < b * 0.9                ? "ok (well under: lower the budget)" : "ok";
    printf "%-16s %12.1f %10d %+7.1f%%  %s\n", p, per, b, change, status }')
  echo "$verdict"
  [[ $verdict == *"OVER BUDGET"* ]] && failed=1
done <"$budget_file"

if ((failed)); then
  echo "check_callgrind: a hot path exceeds its instruction budget by more than ${tolerance_pct}%" >&2
  exit 1
fi
