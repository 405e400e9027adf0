#!/usr/bin/env bash
# Runs one test filter of one test project N times in a row (already built: --no-build) and prints how many runs
# passed, with the first lines of each failure. For intermittent failures (e.g. docs/torchsharp-scalar-race.md).
# Usage: scripts/repeat-test.sh TEST_PROJECT FILTER [N=10]
#   e.g. scripts/repeat-test.sh tests/Ect.Compute.Tests "FullyQualifiedName~ScalarLifetimeBesideCollectionsTests" 5
set -u
[ $# -ge 2 ] || { echo "usage: $0 TEST_PROJECT FILTER [N=10]" >&2; exit 2; }
project=$1 filter=$2 n=${3:-10}
cd "$(dirname "$0")/.."
log=$(mktemp)
pass=0
for i in $(seq 1 "$n"); do
  start=$(date +%s)
  if dotnet test "$project" --no-build --filter "$filter" --logger "console;verbosity=normal" >"$log" 2>&1; then
    pass=$((pass + 1)); echo "run $i: passed ($(( $(date +%s) - start )) s) $(grep -E '^\s*(Passed|Failed)!' "$log" | head -1 | sed 's/ - .*//')"
  else
    echo "run $i: FAILED ($(( $(date +%s) - start )) s)"; grep -E "Failed |Expected|repeat [0-9]+:|Failed!" "$log" | head -8
  fi
done
rm -f "$log"
echo "$filter: $pass of $n runs passed"
[ "$pass" -eq "$n" ]
