#!/usr/bin/env bash
# Side by side: ECT.NET's bench verbs (Ect.Bench trainstep mode=ect, sample) against the official ECT code
# (locuslab/ect, through /work/shared/harness/official_bench.py on Debian's python3-torch), same network (DDPM++
# 32 ch, [1,2,2], 2 blocks, attention at 16, 1x32x32, dropout 0.1), batch and threads, in alternating order
# (ours first in odd pairs, official first in even ones). Prints each pair and a table of medians over the pairs:
# training img/s, 1-step and 2-step sampling img/s (the official 2-step through bench/official-few-step.py: the harness
# times 1 step only) and peak RSS (/usr/bin/time).
#
# Usage (from anywhere; run on a quiet machine, nothing else running):
#   ECT_REF_DIR=DIR bench/side-by-side.sh [pairs=3] [steps=20] [threads=2] [batch=32] [reps=10] [official_heap=default|kept]
# official_heap=kept runs the official code with glibc's heap kept as ECT.NET keeps it (NativeHeapPolicy:
# MALLOC_TRIM_THRESHOLD_ above any step's memory, MALLOC_MMAP_THRESHOLD_ 32 MiB): the comparison without the
# allocator's part of the lead (session 13: the official step is ~1.35x faster so).
# ECT_REF_DIR holds the official code; if it lacks training/loss.py it is exported there from ECT_REF_GIT
# (default /work/.mirror/locuslab+ect/repo, the git dir `fetch github:locuslab/ect` gives). OFFICIAL_BENCH overrides
# the harness path, PYTHON the interpreter (default /usr/bin/python3), BENCH_CONFIG the build (default Release).
# Exit 0 when every run succeeded.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pairs=3 steps=20 threads=2 batch=32 reps=10 official_heap=default
for a in "$@"; do
  case $a in
    pairs=*|steps=*|threads=*|batch=*|reps=*|official_heap=default|official_heap=kept) declare "$a" ;;
    *) echo "unknown argument '$a' (expected pairs= steps= threads= batch= reps= official_heap=default|kept)" >&2; exit 2 ;;
  esac
done
official_env=(X_ECT_OFFICIAL_HEAP=default)
[[ $official_heap == kept ]] && official_env=(MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_MMAP_THRESHOLD_=33554432)
harness=${OFFICIAL_BENCH:-/work/shared/harness/official_bench.py}
python=${PYTHON:-/usr/bin/python3}
: "${ECT_REF_DIR:?set ECT_REF_DIR to a folder for (or with) the official code}"
if [[ ! -f $ECT_REF_DIR/training/loss.py ]]; then
  git_dir=${ECT_REF_GIT:-/work/.mirror/locuslab+ect/repo}
  mkdir -p "$ECT_REF_DIR"
  git -C "$git_dir" archive HEAD | tar -x -C "$ECT_REF_DIR"
fi
export ECT_REF_DIR
[[ -f $harness ]] || { echo "official harness not found: $harness (set OFFICIAL_BENCH)" >&2; exit 2; }
"$python" -c "import torch" 2>/dev/null || { echo "$python cannot import torch (apt-get install python3-torch)" >&2; exit 2; }
# The official training loop imports its metrics package, which imports scipy.linalg at import time (for FID, which
# the bench never computes). Without python3-scipy a stub that fails if it is ever called stands in.
official_pythonpath=${PYTHONPATH:-}
if ! "$python" -c "import scipy.linalg" 2>/dev/null; then
  stub=$(mktemp -d /tmp/ect-scipy-stub.XXXXXX)
  trap 'rm -rf "$stub"' EXIT
  mkdir -p "$stub/scipy"
  echo "# stand-in: the official metrics module imports scipy.linalg; the bench never calls it" >"$stub/scipy/__init__.py"
  printf 'def sqrtm(*a, **k):\n    raise RuntimeError("scipy is not installed (stub from bench/side-by-side.sh)")\n' >"$stub/scipy/linalg.py"
  official_pythonpath=$stub${PYTHONPATH:+:$PYTHONPATH}
  echo "note: $python has no scipy; a stub scipy.linalg (never called by the bench) is used: $stub"
fi

config=${BENCH_CONFIG:-Release}
echo "building Ect.Bench ($config)..."
dotnet build -c "$config" "$here/bench/Ect.Bench" -v q -nologo >/dev/null
bench_dll=$(find "$here/bench/Ect.Bench/bin/$config" -name Ect.Bench.dll | head -1)
[[ -n $bench_dll ]] || { echo "Ect.Bench.dll not found under bench/Ect.Bench/bin/$config" >&2; exit 1; }

log=$(mktemp -d /tmp/ect-side-by-side.XXXXXX)
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "config: pairs=$pairs steps=$steps threads=$threads batch=$batch reps=$reps official_heap=$official_heap; logs in $log"

# Each run under /usr/bin/time: its last stderr line is the peak RSS in KiB.
ours() {
  /usr/bin/time -f "%M" -o "$log/ours-train-$1.rss" dotnet "$bench_dll" trainstep mode=ect steps="$steps" warmup=3 threads="$threads" batch="$batch" >"$log/ours-train-$1.txt"
  /usr/bin/time -f "%M" -o "$log/ours-sample-$1.rss" dotnet "$bench_dll" sample batch="$batch" reps="$reps" threads="$threads" >"$log/ours-sample-$1.txt"
}
official() {
  env "${official_env[@]}" PYTHONPATH=$official_pythonpath /usr/bin/time -f "%M" -o "$log/official-$1.rss" "$python" "$harness" bench --steps "$steps" --warmup 3 --threads "$threads" \
    --batch "$batch" --sample-reps "$reps" --dropout 0.1 >"$log/official-$1.txt"
  # The harness times 1 step only; 2 steps (t = 80, 0.821) through the official generator_fn:
  env "${official_env[@]}" PYTHONPATH=$official_pythonpath "$python" "$here/bench/official-few-step.py" --harness "$harness" \
    --batch "$batch" --reps "$reps" --threads "$threads" --dropout 0.1 >"$log/official-2step-$1.txt"
}
for p in $(seq 1 "$pairs"); do
  if (( p % 2 == 1 )); then ours "$p"; official "$p"; else official "$p"; ours "$p"; fi
  echo "pair $p done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
done

# Extracts one number per pair from the logs and prints the row: name, per-pair values, median.
python3 - "$log" "$pairs" <<'PY'
import re, statistics, sys
log, pairs = sys.argv[1], int(sys.argv[2])
def grab(file, pattern):
    try:
        m = re.findall(pattern, open(f"{log}/{file}").read())
        return float(m[-1]) if m else None
    except OSError:
        return None
rows = [
    ("train img/s", "ours-train-{}.txt", r"\[ect\] step time median [\d.]+ s \(([\d.]+) img/s\)", "official-{}.txt", r"TRAIN .*images/s=([\d.]+)"),
    ("sample 1-step img/s", "ours-sample-{}.txt", r"SAMPLE 1-step .*images/s=([\d.]+)", "official-{}.txt", r"SAMPLE 1-step .*images/s=([\d.]+)"),
    ("sample 2-step img/s", "ours-sample-{}.txt", r"SAMPLE 2-step .*images/s=([\d.]+)", "official-2step-{}.txt", r"SAMPLE 2-step .*images/s=([\d.]+)"),
    ("peak RSS MiB (train)", "ours-train-{}.rss", r"(\d+)\s*$", "official-{}.rss", r"(\d+)\s*$"),
]
def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None
fmt = lambda x: "-" if x is None else f"{x:.1f}"
print(f"\n{'metric':<22} {'ECT.NET per pair':<26} {'official per pair':<26} {'ECT.NET':>9} {'official':>9} {'ratio':>7}")
for name, of, op, rf, rp in rows:
    scale = (1 / 1024) if "RSS" in name else 1
    o = [None if (v := grab(of.format(i), op)) is None else v * scale for i in range(1, pairs + 1)]
    r = [None if rf is None or (v := grab(rf.format(i), rp)) is None else v * scale for i in range(1, pairs + 1)]
    mo, mr = med(o), med(r)
    ratio = f"{mo / mr:.2f}x" if mo and mr else "-"
    print(f"{name:<22} {' '.join(fmt(x) for x in o):<26} {' '.join(fmt(x) for x in r):<26} {fmt(mo):>9} {fmt(mr):>9} {ratio:>7}")
PY
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
