#!/usr/bin/env bash
# Crash-safety soak of the `ect train` daemon on the fake engine (seconds per run, no data, no TorchSharp work):
#
#   1. a reference run, uninterrupted (SQLite journal);
#   2. KILLS SIGKILLs of the daemon's process group at random instants (start-up, journal recovery, steps,
#      checkpoint writes, evaluations), then WRITE_KILLS SIGKILLs aimed inside checkpoint writes (the moment a
#      checkpoints/*.tmp file appears); each kill is resumed by the next start; the final run must end with the
#      reference's weights and EMA SHA-256;
#   3. PostgreSQL stopped mid-run and started again (needs PostgreSQL 15 binaries; root runs them as `postgres`):
#      how the run reacts (waits, stops cleanly, hangs) is measured; a restart must end with the reference's digests;
#   4. a full disk: the run directory on a small tmpfs (needs root), filled mid-run; same measurements.
#
# Usage: scripts/soak.sh [--kills N] [--write-kills N] [--seed S] [--steps N] [--work DIR] [--pg-port P]
#                        [--no-postgres] [--no-full-disk]
# Environment: ECT = the command that runs ect (default: build Release once and run its ect.dll with dotnet).
# Prints one line per event and a summary (also in WORK/summary.txt). Exit 0 when every check passed, 1 otherwise.
# Loopback only (PostgreSQL listens on 127.0.0.1).
set -uo pipefail
shopt -s dotglob  # temporary files of AtomicFile are dot files (.NAME.PID.GUID.tmp): the *.tmp checks must see them

kills=10 write_kills=5 seed=$RANDOM steps=900 work="" pg_port=55471 use_pg=1 use_disk=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --kills) kills=$2; shift 2 ;;
    --write-kills) write_kills=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --pg-port) pg_port=$2; shift 2 ;;
    --no-postgres) use_pg=0; shift ;;
    --no-full-disk) use_disk=0; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$kills" "$write_kills" "$seed" "$steps" "$pg_port"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "soak.sh: '$n' is not a non-negative integer" >&2; exit 2; }
done
(( steps >= 120 )) || { echo "soak.sh: --steps $steps: use at least 120 (the pretraining phase is 60 steps)" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
[[ -n $work ]] || work=$(mktemp -d /tmp/ect-soak-XXXXXX)
mkdir -p "$work"
work=$(cd "$work" && pwd)
summary="$work/summary.txt"
: >"$summary"
failures=0

say() { echo "[soak $(date -u +%H:%M:%S)] $*"; }
record() { echo "$*" | tee -a "$summary"; }
fail() { failures=$((failures + 1)); record "FAIL: $*"; }

if [[ -z ${ECT:-} ]]; then
  say "building ect (Release) ..."
  dotnet build -c Release "$repo/src/Ect.Actors" -v q -nologo >"$work/build.log" 2>&1 \
    || { echo "soak.sh: build failed, see $work/build.log" >&2; exit 1; }
  ECT="dotnet $repo/src/Ect.Actors/bin/Release/net10.0/linux-x64/ect.dll"
fi

# The run: 60 pretraining steps, then tuning; 20 ms steps, 150 ms checkpoint writes (so kills land inside them),
# 250 ms evaluations. Checkpoint every 15 steps, evaluation every 40.
conf="$work/soak.conf"
cat >"$conf" <<EOF
ect {
  run.engine = fake
  pretrain.steps = 60
  tuning.steps = $((steps - 60))
  checkpoint.every-steps = 15
  evaluation.every-steps = 40
  tuning.kimg-per-tick = 0.1
  fake { step-ms = 20, write-ms = 150, eval-ms = 250, parameters = 4096 }
  display { mode = plain, log-interval-seconds = 0.5 }
  control.enabled = off
}
EOF

# Starts `ect train` in a process group of its own; sets $pid (also the group id). Extra arguments go to ect.
start() {
  local dir=$1 log=$2; shift 2
  # setsid execs ect in place (this background job is not a group leader): $! is ect's pid and process group.
  setsid $ECT train --config "$conf" --run-dir "$dir" "$@" >>"$log" 2>&1 &
  pid=$!
}

# Waits until the run in log $1 trains (a progress line; start-up and recovery take seconds under load), then $2 s more.
training() {
  local t=0
  until grep -q ' step ' "$1" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || return 1
    (( t++ < 1200 )) || return 1
    sleep 0.1
  done
  sleep "$2"
}

# Waits for $pid at most $1 seconds; sets $rc (124 when it did not end in time).
wait_for() {
  local limit=$1 t=0
  while kill -0 "$pid" 2>/dev/null && (( t < limit * 10 )); do sleep 0.1; t=$((t + 1)); done
  if kill -0 "$pid" 2>/dev/null; then rc=124; return; fi
  wait "$pid" 2>/dev/null; rc=$?
}

# "weights sha256 X, ema sha256 Y" of the last finished run in a log.
digests() { grep -o 'weights sha256 [0-9a-f]*, ema sha256 [0-9a-f]*' "$1" | tail -n 1; }

finish_and_compare() {
  local dir=$1 log=$2 what=$3; shift 3
  local t0=$SECONDS
  start "$dir" "$log" "$@"
  wait_for 600
  local got
  got=$(digests "$log")
  if (( rc != 0 )); then fail "$what: the resumed run exited $rc (log $log)"; return; fi
  if [[ "$got" != "$reference" ]]; then fail "$what: digests differ: '$got' vs reference '$reference'"; return; fi
  record "ok: $what: resumed run ended with the reference's digests ($((SECONDS - t0)) s)"
}

say "work dir $work, seed $seed, $steps steps, ECT=$ECT"
record "soak: seed $seed, $steps steps (fake engine), kills $kills, write-kills $write_kills, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"

# 1. Reference.
t0=$SECONDS
start "$work/reference" "$work/reference.log"
wait_for 600
reference=$(digests "$work/reference.log")
if (( rc != 0 )) || [[ -z $reference ]]; then
  record "FAIL: the reference run exited $rc without digests (log $work/reference.log)"; exit 1
fi
ref_seconds=$((SECONDS - t0))
record "reference: $ref_seconds s, $reference"

# 2. SIGKILLs: random instants (from 0 to a reference run's length after the start, so start-up and journal
#    recovery are hit too), then inside checkpoint writes.
killed="$work/killed"; klog="$work/killed.log"
landed=0 ended_first=0 in_write=0 in_write_tried=0
# Each resumed start redoes start-up (~1-3 s) and then makes progress until its kill: the window keeps the sum of the
# kills' progress well inside one run, so that no kill meets a finished run.
window_ms=$(( 3000 + ref_seconds * 1000 / (2 * (kills + write_kills + 1)) ))

# Whether the run in $1 has finished (its journal's last event is RunFinished): a kill that came after it hit
# nothing worth testing. SQLite journals only (`ect runs`).
finished() { $ECT runs --journal "$1" 2>/dev/null | grep -q 'RunFinished'; }
for ((i = 1; i <= kills; i++)); do
  start "$killed" "$klog"
  # awk's generator, seeded per kill: bash's $RANDOM gives nearly equal values for consecutive draws after a seed.
  delay=$(awk -v s="$seed" -v i="$i" -v w="$window_ms" 'BEGIN { srand(s * 7919 + i); print int(rand() * w) }')
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  if kill -KILL -- "-$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null; rc=$?
    if finished "$killed"; then ended_first=$((ended_first + 1)); say "kill $i: SIGKILL after $delay ms, but the run had finished"
    elif (( rc == 137 )); then landed=$((landed + 1)); say "kill $i: SIGKILL after $delay ms"
    else say "kill $i: exit $rc"; fi
  else
    wait "$pid" 2>/dev/null; rc=$?; ended_first=$((ended_first + 1)); say "kill $i: the run ended (exit $rc) before the kill at $delay ms"
  fi
done
for ((i = 1; i <= write_kills; i++)); do
  in_write_tried=$((in_write_tried + 1))
  start "$killed" "$klog"
  hit=0
  for ((t = 0; t < 3000; t++)); do   # up to ~60 s for a write to begin
    if compgen -G "$killed/checkpoints/*.tmp" >/dev/null; then
      tmp=$(compgen -G "$killed/checkpoints/*.tmp" | head -n 1)
      kill -KILL -- "-$pid" 2>/dev/null && hit=1
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  wait "$pid" 2>/dev/null; rc=$?
  if finished "$killed"; then
    ended_first=$((ended_first + 1)); say "write-kill $i: the run had finished (exit $rc)"
  elif (( hit == 1 && rc == 137 )) && [[ -e $tmp ]]; then
    in_write=$((in_write + 1)); landed=$((landed + 1)); say "write-kill $i: SIGKILL while $(basename "$tmp") was being written"
  elif (( rc == 137 )); then
    landed=$((landed + 1)); say "write-kill $i: SIGKILL landed just after the write finished"
  else
    say "write-kill $i: missed (exit $rc)"
  fi
done
record "kills: $landed of $((kills + write_kills)) landed (SIGKILL, exit 137); $in_write inside a checkpoint write (of $in_write_tried aimed); $ended_first runs ended before their kill"
(( landed == kills + write_kills )) || fail "only $landed of $((kills + write_kills)) kills landed"
finish_and_compare "$killed" "$klog" "after $landed SIGKILLs"
leftover=$(compgen -G "$killed/checkpoints/*.tmp" | wc -l)
(( leftover == 0 )) || fail "$leftover checkpoints/*.tmp files left after the resumed run"

# 3. PostgreSQL stopped and started again mid-run.
if (( use_pg == 1 )) && command -v pg_ctl >/dev/null; then
  pgdir="$work/pg"
  if cs=$("$repo/scripts/postgres.sh" start "$pgdir" "$pg_port" 2>"$work/pg-start.log"); then
    pgrun="$work/pg-run"; plog="$work/pg-run.log"
    pgset=(--set ect.persistence.provider=postgresql --set "ect.persistence.connection-string=\"$cs\"")
    start "$pgrun" "$plog" "${pgset[@]}"
    training "$plog" 2 || fail "PostgreSQL run: no progress line within 120 s (log $plog)"
    t_stop=$SECONDS
    "$repo/scripts/postgres.sh" stop "$pgdir"; say "PostgreSQL stopped"
    # Down for 5 s (or until the run ends), then up again.
    for ((t = 0; t < 50; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    "$repo/scripts/postgres.sh" start "$pgdir" "$pg_port" >/dev/null 2>>"$work/pg-start.log"; say "PostgreSQL started again"
    wait_for 120
    took=$((SECONDS - t_stop))
    if (( rc == 124 )); then
      fail "PostgreSQL stopped mid-run: the run neither continued nor stopped within 120 s of the outage (hang); SIGTERM sent"
      kill -TERM "$pid"; wait_for 30; (( rc == 124 )) && { kill -KILL -- "-$pid"; wait "$pid" 2>/dev/null; }
    elif (( rc == 0 )); then
      record "postgres: the run rode out a 5 s outage and finished (exit 0, ${took} s after the stop)"
    else
      msg=$(grep -m1 -o 'the PostgreSQL journal.*' "$plog" | cut -c1-200)
      [[ -n $msg ]] || msg=$(tail -n 1 "$plog" | cut -c1-200)
      record "postgres: the run stopped cleanly with exit $rc ${took} s after the stop: $msg"
    fi
    if (( rc != 0 )); then finish_and_compare "$pgrun" "$plog" "PostgreSQL outage, restarted" "${pgset[@]}"
    elif [[ $(digests "$plog") == "$reference" ]]; then record "ok: PostgreSQL outage: the run's digests are the reference's"
    else fail "PostgreSQL outage: digests differ: '$(digests "$plog")'"; fi
    "$repo/scripts/postgres.sh" stop "$pgdir"
  else
    record "postgres: skipped, the server did not start (see $work/pg-start.log)"
  fi
else
  record "postgres: skipped (--no-postgres or no pg_ctl on PATH)"
fi

# 4. A full disk: the run directory on a tmpfs, filled to the last byte mid-run.
if (( use_disk == 1 )) && [[ $(id -u) -eq 0 ]]; then
  disk="$work/disk"; mkdir -p "$disk"
  if mount -t tmpfs -o size=8m tmpfs "$disk" 2>/dev/null; then
    drun="$disk/run"; dlog="$work/disk-run.log"
    start "$drun" "$dlog"
    training "$dlog" 2 || fail "full-disk run: no progress line within 120 s (log $dlog)"
    t_full=$SECONDS
    dd if=/dev/zero of="$disk/filler" bs=64k status=none 2>/dev/null; say "disk full ($(df -h --output=avail "$disk" | tail -n 1 | tr -d ' ') left)"
    wait_for 120
    took=$((SECONDS - t_full))
    if (( rc == 124 )); then
      fail "full disk: the run neither stopped nor went on within 120 s (hang); SIGTERM sent"
      kill -TERM "$pid"; wait_for 30
      if (( rc == 124 )); then fail "full disk: SIGTERM did not end the run within 30 s; SIGKILL"; kill -KILL -- "-$pid"; wait "$pid" 2>/dev/null; fi
    else
      msg=$(grep -m1 -iE 'no space|cannot be written|failed' "$dlog" | cut -c1-240)
      record "full disk: the run ended with exit $rc ${took} s after the disk filled: ${msg:-no message}"
      (( rc == 134 || rc == 139 )) && fail "full disk: the process crashed (exit $rc)"
    fi
    rm -f "$disk/filler"
    finish_and_compare "$drun" "$dlog" "full disk, space freed, restarted"
    umount "$disk"
  else
    record "full disk: skipped (cannot mount a tmpfs)"
  fi
else
  record "full disk: skipped (--no-full-disk or not root)"
fi

record "soak: $failures failure(s); logs in $work"
(( failures == 0 ))
