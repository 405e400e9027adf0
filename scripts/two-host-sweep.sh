#!/usr/bin/env bash
# A sweep on two "machines" (issue 19 point 7), emulated on this one with Linux network namespaces: hosts ect-a and
# ect-b joined by a private veth link (10.231.8.1 <-> 10.231.8.2; nothing else is reachable from them), PostgreSQL on
# ect-a's address, one `ect node` on each host (mutual TLS, the default), a sweep submitted, watched and timed, one
# node SIGKILLed in the middle (its runs must finish on the other host), then everything removed. The run root is one
# folder that both hosts see, as an NFS mount would be. Needs root (ip netns), PostgreSQL 15 and a built `ect`.
#
#   scripts/two-host-sweep.sh [--runs N] [--steps S] [--step-ms MS] [--kill on|off] [--ect-dll DLL] [--keep DIR]
#
# Prints a timeline (seconds since the nodes were started): nodes up, sweep submitted, each run's end, the kill, the
# split-brain resolver's downing, the sweep's end; then `ect sweep status` and `ect sweep results`. Runs use the fake
# engine (the cluster's own costs, not training); --step-ms sets a step's length.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=6 steps=200 step_ms=50 kill=on dll="" keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --step-ms) step_ms=$2; shift 2 ;;
    --kill) kill=$2; shift 2 ;;
    --ect-dll) dll=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "two-host-sweep: needs root (ip netns add)" >&2; exit 2; }
if [ -z "$dll" ]; then
  dotnet build -c Release src/Ect.Actors -v q -nologo >/dev/null
  dll=$(ls src/Ect.Actors/bin/Release/net10.0/*/ect.dll src/Ect.Actors/bin/Release/net10.0/ect.dll 2>/dev/null | head -1)
fi
[ -f "$dll" ] || { echo "two-host-sweep: no ect.dll at '$dll'" >&2; exit 2; }
dll=$(realpath "$dll")
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$pgbin" ] || { echo "two-host-sweep: PostgreSQL binaries not found (apt-get install postgresql-15)" >&2; exit 2; }

work=${keep:-$(mktemp -d /tmp/ect-two-host.XXXXXX)}
mkdir -p "$work"; chmod 755 "$work"
A=ect-a B=ect-b IPA=10.231.8.1 IPB=10.231.8.2 PORT=4053 PGPORT=5433
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -d "$work/pg/data" ] && ip netns exec $A su postgres -s /bin/bash -c "$pgbin/pg_ctl -D '$work/pg/data' -m immediate stop" >/dev/null 2>&1 || true
  ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true
  [ -z "$keep" ] && rm -rf "$work"
  return 0
}
trap cleanup EXIT
ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true
ip netns add $A; ip netns add $B
ip link add ect-va type veth peer name ect-vb
ip link set ect-va netns $A; ip link set ect-vb netns $B
ip -n $A addr add $IPA/24 dev ect-va; ip -n $B addr add $IPB/24 dev ect-vb
for h in $A $B; do ip -n $h link set lo up; done
ip -n $A link set ect-va up; ip -n $B link set ect-vb up

# PostgreSQL on host A's link address (a private link of namespaces made here; trust auth on that subnet only).
mkdir -p "$work/pg"; chown postgres "$work/pg"
su postgres -s /bin/bash -c "$pgbin/initdb -D '$work/pg/data' -A trust -U postgres" >/dev/null
echo "host all all 10.231.8.0/24 trust" >> "$work/pg/data/pg_hba.conf"
ip netns exec $A su postgres -s /bin/bash -c "$pgbin/pg_ctl -D '$work/pg/data' -l '$work/pg/log' -w -o \"-h $IPA -p $PGPORT -k '$work/pg'\" start" >/dev/null
export ECT_PG_CONNECTION="Host=$IPA;Port=$PGPORT;Username=postgres;Database=postgres"

root="$work/runs"; mkdir -p "$root"
t0=$(date +%s.%N)
at() { awk -v a="$t0" -v b="$(date +%s.%N)" -v m="$*" 'BEGIN { printf "%6.1f s  %s\n", b - a, m }'; }
node() { # host ip log
  ip netns exec "$1" dotnet "$dll" node --seed-nodes "$IPA:$PORT,$IPB:$PORT" --hostname "$2" --port $PORT --slots 2 \
    --run-root "$root" --down-after 5 > "$3" 2>&1 &
  pids+=($!)
}
wait_line() { # file regex timeout-s
  local end=$((SECONDS + $3)); until grep -qE "$2" "$1" 2>/dev/null; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done
}
at "start node on $A ($IPA) and node on $B ($IPB)"
node $A $IPA "$work/node-a.log"; pid_a=${pids[-1]}
node $B $IPB "$work/node-b.log"; pid_b=${pids[-1]}
wait_line "$work/node-a.log" ': up; ' 120 || { echo "node A not up:"; tail -20 "$work/node-a.log"; exit 1; }; at "node A up"
wait_line "$work/node-b.log" ': up; ' 120 || { echo "node B not up:"; tail -20 "$work/node-b.log"; exit 1; }; at "node B up"
wait_line "$work/node-a.log" '\(2 members\)' 60 && at "cluster of 2 members (as node A sees it)"

spec="$work/two-host.conf"
{
  echo "sweep {"
  echo "  name = \"two-host\""
  echo "  metric = \"fd-resnet18-1step\""
  echo "  set { ect.run.engine = fake, ect.pretrain.steps = 0, ect.checkpoint.every-steps = 20, ect.evaluation.every-steps = 0,"
  echo "        ect.control.enabled = off, ect.tuning.kimg-per-tick = 0.1, ect.fake { step-ms = $step_ms, parameters = 4096 } }"
  echo "  list = ["; for i in $(seq 1 "$runs"); do echo "    { \"ect.tuning.steps\" = $steps, \"ect.run.seed\" = $i }"; done; echo "  ]"
  echo "}"
} > "$spec"
ect() { ip netns exec $A dotnet "$dll" "$@"; }
ect sweep submit "$spec" --cluster "$IPA:$PORT" --token-file "$root/cluster.token" > "$work/submit.log" 2>&1 || { cat "$work/submit.log"; exit 1; }
at "sweep submitted ($runs fake runs of $steps steps x $step_ms ms, 2 slots per node)"

killed=0 ended=0
while :; do
  status=$(ect sweep status two-host --cluster "$IPA:$PORT" --token-file "$root/cluster.token" 2>&1 || true)
  # no count while the director singleton moves to a survivor (the status call then fails for a while)
  now=$(echo "$status" | grep -oE "[0-9]+ of [0-9]+ runs ended" | head -1 | cut -d' ' -f1 || true)
  if [ -n "$now" ] && [ "$now" -gt "$ended" ]; then ended=$now; at "$ended of $runs runs ended"; fi
  # the kill: once a run has ended and host B still holds runs (its address in the status table)
  if [ "$kill" = on ] && [ $killed -eq 0 ] && [ "$ended" -ge 1 ] && [ "$ended" -lt "$runs" ] && grep -q "$IPB" <<<"$status"; then
    kill -9 "$pid_b"; killed=1; at "SIGKILL node B (its trainers end themselves: they watch their parent)"
  fi
  if [ $killed -eq 1 ] && grep -qiE "down|removed" "$work/node-a.log" && [ "${downed:-0}" -eq 0 ]; then downed=1; at "node B downed by the split-brain resolver (node A's log)"; fi
  [ "$ended" -ge "$runs" ] && break
  sleep 1
done
at "sweep done"
ect sweep status two-host --cluster "$IPA:$PORT" --token-file "$root/cluster.token"
ect sweep results two-host --cluster "$IPA:$PORT" --token-file "$root/cluster.token" | tail -5
echo "logs: $work (removed at exit unless --keep DIR)"
