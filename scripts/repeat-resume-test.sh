#!/usr/bin/env bash
# Runs the cross-process exact-resume test (TrainStateResumeTests: 3 + 3 steps in two processes must give the bits of
# 6 steps in one) N times in a row and prints how many passed. oneDNN is on unless ECT_LIBTORCH_ONEDNN=off is set.
# Usage: scripts/repeat-resume-test.sh [N=20]   (after `dotnet build Ect.Actors.sln`)
set -u
n=${1:-20}
cd "$(dirname "$0")/.."
pass=0
for i in $(seq 1 "$n"); do
  if dotnet test tests/Ect.Compute.Tests --no-build --filter "FullyQualifiedName~TrainStateResumeTests" >/tmp/ect-resume-$$.log 2>&1; then
    pass=$((pass + 1)); echo "run $i: passed"
  else
    echo "run $i: FAILED"; grep -E "Expected|but" /tmp/ect-resume-$$.log | head -3
  fi
done
rm -f /tmp/ect-resume-$$.log
echo "TrainStateResumeTests: $pass of $n passed (ECT_LIBTORCH_ONEDNN=${ECT_LIBTORCH_ONEDNN:-on})"
[ "$pass" -eq "$n" ]
