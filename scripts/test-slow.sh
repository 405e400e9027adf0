#!/usr/bin/env bash
# The slow checks (trait Category=Slow): long parity runs, kill -9 resume cycles, big networks.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet test Ect.Actors.sln --filter "Category=Slow" "$@"
