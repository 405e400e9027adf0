#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL server for tests and CI.
#
#   scripts/postgres.sh start DIR PORT   # initdb DIR/data (trust auth), listen on 127.0.0.1:PORT only;
#                                        # prints the Npgsql connection string on stdout
#   scripts/postgres.sh stop DIR         # fast shutdown (DIR stays; delete it yourself)
#
# initdb and postgres refuse to run as root: as root, DIR is handed to the `postgres` user and the
# commands run through `su postgres` (see docs/platform-notes.md). Needs PG 15 binaries on PATH.
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
cmd=$1
dir=$(realpath -m "$2")
data="$dir/data"
sock="$dir/sock"
log="$dir/postgres.log"

as_pg() {
  # Run a command line as the postgres user when we are root, else as ourselves.
  if [[ $(id -u) -eq 0 ]]; then
    su postgres -s /bin/bash -c "export PATH='$PATH'; $1"
  else
    bash -c "$1"
  fi
}

case "$cmd" in
  start)
    [[ $# -eq 3 ]] || usage
    port=$3
    [[ $port =~ ^[0-9]+$ ]] && (( port > 0 && port < 65536 )) || { echo "postgres.sh: PORT '$port' is not a TCP port" >&2; exit 2; }
    for b in initdb pg_ctl postgres; do
      command -v "$b" >/dev/null || { echo "postgres.sh: '$b' is not on PATH: install PostgreSQL 15 (binaries initdb, pg_ctl, postgres)" >&2; exit 1; }
    done
    if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
      echo "postgres.sh: running as root but there is no 'postgres' user to run the server as" >&2; exit 1
    fi
    mkdir -p "$dir" "$sock"
    if [[ $(id -u) -eq 0 ]]; then chown -R postgres "$dir"; fi
    chmod 700 "$dir"
    if [[ ! -f "$data/PG_VERSION" ]]; then
      as_pg "initdb -D '$data' -U postgres --auth=trust -E UTF8 >'$dir/initdb.log' 2>&1" \
        || { echo "postgres.sh: initdb failed, see $dir/initdb.log:" >&2; tail -n 20 "$dir/initdb.log" >&2; exit 1; }
    fi
    as_pg "pg_ctl -D '$data' -l '$log' -o \"-c listen_addresses=127.0.0.1 -p $port -k '$sock' -c fsync=on\" -w -t 60 start >/dev/null" \
      || { echo "postgres.sh: server did not start on 127.0.0.1:$port, see $log:" >&2; tail -n 20 "$log" >&2 || true; exit 1; }
    echo "Host=127.0.0.1;Port=$port;Username=postgres;Database=postgres"
    ;;
  stop)
    if [[ -f "$data/postmaster.pid" ]]; then
      as_pg "pg_ctl -D '$data' -m fast -w stop >/dev/null"
    fi
    ;;
  *) usage ;;
esac
