#!/usr/bin/env bash
# Reproduces every number and picture of docs/results.md (issue 6) from the shipped teacher.
#   scripts/results-fashion-mnist.sh [teacher|tune|eval|all] [SEEDS...]
# teacher: re-makes the teacher from scratch (~80 min of one core; the shipped file makes this optional).
# tune:    ECT-tunes the teacher with the default configuration, one run per seed (runs/ect-seed<S>).
# eval:    FD-ResNet18 of 10,000 samples against the first 10,000 Fashion-MNIST training images, for the teacher
#          (Heun 35 NFE; its own 1- and 2-step output) and every tuned seed (1 and 2 steps), with PNG grids.
# Results: docs/results/*.json and *.png. Each step skips what already exists, so the script can be re-run after an
# interruption (a tuning run interrupted mid-way continues exactly: `ect train` resumes its run directory).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}; shift || true
seeds=("${@:-0 1 2}"); seeds=(${seeds[@]})
dotnet build -c Release src/Ect.Actors -v quiet -nologo >/dev/null
ect=src/Ect.Actors/bin/Release/net10.0/linux-x64/ect
teacher=teachers/fashion-mnist-ddpmpp16.safetensors
data=/usr/share/datasets/fashion-mnist
out=docs/results
mkdir -p "$out"
common=(--num 10000 --ref-num 10000 --batch 100 --threads 2 --seed 0 --data "$data" --grid-count 64)

if [[ $what == teacher ]]; then
  "$ect" train --config hocon/teacher-fashion-mnist.conf --run-dir runs/teacher-fashion-mnist
  "$ect" export runs/teacher-fashion-mnist --out "$teacher"
  exit 0
fi

if [[ $what == tune || $what == all ]]; then
  for s in "${seeds[@]}"; do
    [[ -f $out/ect-seed$s.safetensors ]] && continue
    # Seed 0 also measures FD-ResNet18 while it trains (the curve; training bits are unaffected by evaluators).
    overlay=(); [[ $s == 0 ]] && overlay=(--config hocon/fd-curve.conf)
    # bash's `time` gives the CPU time (user + sys) the tuning cost.
    time "$ect" train "${overlay[@]}" --run-dir runs/ect-seed$s --set ect.run.seed=$s --set ect.display.mode=plain
    "$ect" export runs/ect-seed$s --out "$out/ect-seed$s.safetensors"
  done
fi

evaluate() { # name, then ect eval arguments
  local name=$1; shift
  [[ -f $out/$name.json ]] && return 0
  "$ect" eval "$@" "${common[@]}" --out "$out/$name.json" --grid "$out/$name.png"
}
if [[ $what == eval || $what == all ]]; then
  evaluate teacher-heun35 --teacher "$teacher" --sampler heun --nfe 35
  evaluate teacher-1step --teacher "$teacher" --sampler consistency --steps 1
  evaluate teacher-2step --teacher "$teacher" --sampler consistency --steps 2
  for s in "${seeds[@]}"; do
    for n in 1 2; do evaluate ect-seed$s-${n}step --checkpoint "$out/ect-seed$s.safetensors" --steps $n; done
  done
fi
