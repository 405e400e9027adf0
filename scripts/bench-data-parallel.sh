#!/usr/bin/env bash
# Data-parallel throughput (issue 20 point 6): img/s of `ect train` as
#   2 ranks x 1 thread (mpirun -np 2)  |  1 process x 2 threads  |  1 process x 1 thread
# on the default configuration and the 1.75M-parameter bench network (Ect.Bench trainstep's: DDPM++ 32 ch [1,2,2],
# 2 blocks, attention at 16, batch 32), on a quiet machine and beside a one-core CPU hog (`yes > /dev/null`).
# Run it on a QUIET machine (nothing else building or training): numbers taken beside other work mean nothing.
#
#   scripts/bench-data-parallel.sh [--steps N] [--warmup W] [--repeats R] [--configs default,bench] [--hog both|off|on] [--out DIR] [--ect-dll DLL] [--mpirun-args "..."]
#                                  [--rank-cores C0,C1] [--variants mpi2,t2,t1]
#
# --mpirun-args: more mpirun options for the 2-rank runs, e.g. "--bind-to none" (Open MPI binds each of 2 ranks to one
# core by default, so rank 0's daemon threads share its compute core; the profile line says how many CPUs a rank has).
#
# --rank-cores C0,C1: rank r runs on core Cr only (mpirun --bind-to none + taskset, scripts/tools/rank-core.sh), e.g.
# 1,0 puts rank 0 (the daemon) on core 1: whether a slow rank 0 follows the rank or the core. --variants: which of the
# three to run (default all; the 1-thread runs then also run pinned to C0 when --rank-cores is given, to compare cores).
#
# Each cell is R fresh runs of N steps per variant (evaluators, control and checkpoints out of the way), the three
# variants alternating run by run (2 ranks, 2 threads, 1 thread, then again), so a drift of the machine's speed hits
# them alike; img/s is counted from stats.jsonl between step W and step N (start-up, JIT and the first steps
# excluded); a cell shows the median of its R runs (with min-max when R > 1), the ratio is of the medians. The
# 2-rank rows also give the all-reduce's share of rank 0's step time (median; ect's own "data-parallel: ..." line;
# it includes waiting for the slower rank). Below the table, each 2-rank run's per-rank profile (ect's "data-parallel
# profile: rank R ..." lines: mean ms per step and share of packet wait, assembly, forward+backward, note wait,
# all-reduce, update, outside the step): compare shares and ranks, not absolute times, on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# Warm-up 70 steps (session 16; it was 10 of 40 before): .NET's tiered JIT recompiles the methods a step calls once or
# a few times after ~30 calls (instrumented code) and again after ~30 more (optimised code), on a background thread.
# A 1-thread process absorbs those bursts on the idle second core; a 2-rank run pays them on a compute core, and the
# lockstep step waits for the rank that paid (a perf sched timehist of a 2-rank run: 0.4 s of the worker's ".NET Tiered
# Compilation" thread on its core while rank 0 idled; spiked steps of the 2-rank runs cluster at steps 5-19, 30-39 and
# ~63; none in two runs with DOTNET_TieredCompilation=0). A training of thousands of steps is past it in its first
# minutes, so the steps after 70 are the throughput users get, for every variant alike.
steps=110 warmup=70 repeats=1 configs=default,bench hog=both out="" dll="" mpirun_args="" rank_cores="" variants=mpi2,t2,t1
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --hog) hog=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --ect-dll) dll=$2; shift 2 ;;   # an already built ect.dll (skips the Release build)
    --mpirun-args) mpirun_args=$2; shift 2 ;;
    --rank-cores) rank_cores=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[ "$warmup" -lt "$steps" ] || { echo "--warmup $warmup must be below --steps $steps" >&2; exit 2; }
[[ "$repeats" =~ ^[1-9][0-9]*$ ]] || { echo "--repeats $repeats must be a whole number >= 1" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "mpirun not found: apt-get install -y openmpi-bin libopenmpi-dev" >&2; exit 2; }
out=${out:-$(mktemp -d /tmp/ect-bench-dp.XXXXXX)}
mkdir -p "$out"
if [ -z "$dll" ]; then
  dotnet build -c Release src/Ect.Actors -v q -nologo >/dev/null
  dll="$PWD/src/Ect.Actors/bin/Release/net10.0/linux-x64/ect.dll"
fi
ect="dotnet $dll"
mpi="mpirun --allow-run-as-root --oversubscribe --mca btl self,vader $mpirun_args"
mpi_ect="$ect" solo_ect="$ect"
if [ -n "$rank_cores" ]; then
  [[ "$rank_cores" =~ ^[0-9]+,[0-9]+$ ]] || { echo "--rank-cores $rank_cores: expected C0,C1 (core numbers)" >&2; exit 2; }
  mpi="$mpi --bind-to none"
  mpi_ect="$PWD/scripts/tools/rank-core.sh $rank_cores $ect"
  solo_ect="taskset -c ${rank_cores%%,*} $ect"
fi
has() { [[ ",$variants," == *",$1,"* ]]; }

common=(--set ect.evaluation.every-steps=0 --set "ect.evaluation.evaluators=[]" --set ect.control.enabled=off
        --set ect.display.mode=plain --set ect.checkpoint.every-steps=100000 --set ect.distributed.digest-every=0
        --set ect.tuning.steps=100000 --steps "$steps")
config_args() {
  case "$1" in
    default) ;;
    bench) echo --set ect.network.model-channels=32 --set "ect.network.channel-mult=[1,2,2]" --set ect.network.num-blocks=2 \
                --set "ect.network.attn-resolutions=[16]" --set 'ect.network.init=""' --set ect.data.batch-size=32 \
                --set ect.pretrain.steps=0 ;;
    *) echo "unknown config $1" >&2; exit 2 ;;
  esac
}

# img/s between step $warmup and the last step of a run's stats.jsonl (python3: JSON lines and ISO times).
rate() {
  python3 - "$1" "$warmup" <<'PY'
import json, sys, datetime
rows = [json.loads(l) for l in open(sys.argv[1] + "/stats.jsonl")]
w = int(sys.argv[2]); a = next(r for r in rows if r["step"] == w); b = rows[-1]
t = lambda r: datetime.datetime.fromisoformat(r["time"]).timestamp()
print(f'{(b["kimg"] - a["kimg"]) * 1000 / (t(b) - t(a)):.2f}')
PY
}

# Steps of the window (after $warmup) that took over 1.25x the window's median, as "COUNT of N: step=ms ...".
spikes() {
  python3 - "$1" "$warmup" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/stats.jsonl")]
rows = [r for r in rows if r["step"] > int(sys.argv[2])]
m = statistics.median(r["step_s"] for r in rows)
hit = [f'{r["step"]}={r["step_s"] * 1000:.0f}' for r in rows if r["step_s"] > 1.25 * m]
print(f'{len(hit)} of {len(rows)} (median {m * 1000:.0f} ms){": " + " ".join(hit) if hit else ""}')
PY
}

# "median (min-max)" of the numbers given (just the number for one; "-" for a variant not run).
summary() {
  python3 - "$@" <<'PY'
import statistics, sys
v = [float(x) for x in sys.argv[1:] if x != '-']
if not v:
    print('-'); sys.exit()
m = statistics.median(v)
print(f'{m:.2f}' if len(v) == 1 else f'{m:.2f} ({min(v):.2f}-{max(v):.2f})')
PY
}
median() { python3 -c 'import statistics, sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.2f}")' "$@"; }

hog_pid=""
stop_hog() { [ -n "$hog_pid" ] && kill "$hog_pid" 2>/dev/null; hog_pid=""; }
trap stop_hog EXIT

conditions=(); [ "$hog" != on ] && conditions+=(quiet); [ "$hog" != off ] && conditions+=(hog)
printf '| config | condition | 2 ranks x 1 thread | 1 process x 2 threads | 1 process x 1 thread | 2 ranks / 1x1 | all-reduce share |\n|---|---|---|---|---|---|---|\n' | tee "$out/table.md"
for cfg in ${configs//,/ }; do
  for cond in "${conditions[@]}"; do
    [ "$cond" = hog ] && { yes > /dev/null & hog_pid=$!; }
    read -r -a extra <<< "$(config_args "$cfg")"
    d="$out/$cfg-$cond"; rm -rf "$d"; mkdir -p "$d"
    ms=() t2s=() t1s=() shares=()
    for ((i = 1; i <= repeats; i++)); do
      if has mpi2; then $mpi -np 2 $mpi_ect train --run-dir "$d/mpi2-$i" "${common[@]}" "${extra[@]}" --set ect.run.threads=1 > "$d/mpi2-$i.log" 2>&1; ms+=("$(rate "$d/mpi2-$i")"); else ms+=(-); fi
      if has t2; then $ect train --run-dir "$d/t2-$i" "${common[@]}" "${extra[@]}" --set ect.run.threads=2 > "$d/t2-$i.log" 2>&1; t2s+=("$(rate "$d/t2-$i")"); else t2s+=(-); fi
      if has t1; then $solo_ect train --run-dir "$d/t1-$i" "${common[@]}" "${extra[@]}" --set ect.run.threads=1 > "$d/t1-$i.log" 2>&1; t1s+=("$(rate "$d/t1-$i")"); else t1s+=(-); fi
      share=$(grep -oE '[0-9.]+% of rank 0' "$d/mpi2-$i.log" 2>/dev/null | tail -1 | cut -d'%' -f1 || true)
      [ -n "$share" ] && shares+=("$share")
      spiked=$(has mpi2 && spikes "$d/mpi2-$i" || echo -)
      echo "  $cfg $cond round $i of $repeats: 2 ranks ${ms[-1]}, 2 threads ${t2s[-1]}, 1 thread ${t1s[-1]} img/s, all-reduce ${share:--}%, 2-rank steps over 1.25x their median: $spiked" >&2
      grep -h 'data-parallel profile: rank' "$d/mpi2-$i.log" 2>/dev/null | sort | sed "s/^/  $cfg $cond round $i: /" >> "$out/profiles.txt" || true
    done
    stop_hog
    ratio=-; has mpi2 && has t1 && ratio=$(python3 -c "print(f'{$(median "${ms[@]}") / $(median "${t1s[@]}"):.2f}x')")
    share=-; [ ${#shares[@]} -gt 0 ] && share="$(median "${shares[@]}")%"
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$cfg" "$cond" "$(summary "${ms[@]}")" "$(summary "${t2s[@]}")" "$(summary "${t1s[@]}")" "$ratio" "$share" | tee -a "$out/table.md"
  done
done
[ -f "$out/profiles.txt" ] && { echo; echo "per-rank profiles of the 2-rank runs:"; cat "$out/profiles.txt"; }
echo "load average at the end: $(cat /proc/loadavg); runs and logs in $out"
