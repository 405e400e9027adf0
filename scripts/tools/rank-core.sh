#!/usr/bin/env bash
# Runs a command on one core chosen by its Open MPI rank: rank-core.sh C0,C1,... CMD ARGS...
# (rank r on core Cr; used by scripts/bench-data-parallel.sh --rank-cores with mpirun --bind-to none).
set -euo pipefail
IFS=, read -r -a cores <<< "$1"; shift
rank=${OMPI_COMM_WORLD_RANK:?rank-core.sh: not started by Open MPI mpirun (OMPI_COMM_WORLD_RANK unset)}
[ "$rank" -lt "${#cores[@]}" ] || { echo "rank-core.sh: rank $rank has no core in the list" >&2; exit 2; }
exec taskset -c "${cores[$rank]}" "$@"
