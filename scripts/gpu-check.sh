#!/usr/bin/env bash
# GPU check (issue 18; README "GPU"): builds ect with the CUDA libtorch, checks that the device gives the CPU's results
# within float32 tolerance on a small config (DeviceParityTests: denoiser output, ECT loss and gradients with the same
# weights, inputs and draws; DevicePlacementTests: every parameter, buffer, gradient, optimizer state, batch, sample and
# checkpoint load on the device), then times a short tiny training run on the CPU and on the GPU and prints img/s.
#
#   scripts/gpu-check.sh [--device cuda:N] [--steps N]   # on a machine with an NVIDIA GPU (driver for CUDA 12.8)
#   scripts/gpu-check.sh --cpu-only                     # the CPU half only (what runs on a machine without a GPU)
#
# Not run on this project's machines with a GPU (none is lent to them); the --cpu-only half is.
set -euo pipefail
cd "$(dirname "$0")/.."

device=cuda:0; steps=40; cpu_only=0
config=${ECT_GPU_CHECK_CONFIGURATION:-Release}   # Debug reuses a checkout's debug build
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu-only) cpu_only=1 ;;
    --device) device="$2"; shift ;;
    --steps) steps="$2"; shift ;;
    *) echo "gpu-check: unknown argument '$1' (use --cpu-only, --device cuda:N, --steps N)" >&2; exit 2 ;;
  esac
  shift
done

if [[ $cpu_only == 0 ]]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo "gpu-check: no CUDA device here (nvidia-smi missing or lists no GPU). Run it on a machine with an NVIDIA GPU," >&2
    echo "           or 'scripts/gpu-check.sh --cpu-only' for the CPU half." >&2
    exit 3
  fi
  backend=cuda; check_device=$device
else
  backend=cpu; check_device=cpu
fi

echo "== build (TorchBackend=$backend)"
dotnet build Ect.Actors.sln -c "$config" -p:TorchBackend=$backend -v quiet -nologo

echo "== parity and placement on $check_device"
ECT_GPU_CHECK_DEVICE=$check_device dotnet test tests/Ect.Actors.Tests -c "$config" --no-build -p:TorchBackend=$backend \
  --filter "FullyQualifiedName~DeviceParityTests|FullyQualifiedName~DevicePlacementTests" --logger "console;verbosity=minimal"

ect=src/Ect.Actors/bin/$config/net10.0/linux-x64/ect
data=${ECT_GPU_CHECK_DATA:-/usr/share/datasets/fashion-mnist}
[[ -e "$data" ]] || { echo "gpu-check: no dataset at $data (apt-get install dataset-fashion-mnist, or set ECT_GPU_CHECK_DATA)" >&2; exit 4; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# A small DDPM++ (32 ch [1,2,2], 32x32x1, batch 32): img/s of the last step lines of stats.jsonl.
speed() {
  local dev=$1 dir="$work/run-$1"
  "$ect" train --run-dir "$dir" --new-run --steps "$steps" \
    --set ect.run.device="$dev" --set ect.data.path="$data" --set ect.data.batch-size=32 --set 'ect.network.init=""' \
    --set ect.network.model-channels=32 --set "ect.network.channel-mult=[1,2,2]" --set ect.network.num-blocks=2 \
    --set ect.pretrain.steps="$steps" --set ect.tuning.steps=0 --set ect.display.mode=off \
    --set "ect.evaluation.evaluators=[]" > "$dir.log" 2>&1 || { echo "gpu-check: training on $dev failed, see:"; tail -20 "$dir.log"; exit 5; }
  grep -o '"images_per_s":[0-9.]*' "$dir/stats.jsonl" | tail -5 | cut -d: -f2 | awk -v d="$dev" '{s+=$1; n++} END {if (n) printf "%-8s %8.1f img/s (mean of the last %d stats lines)\n", d, s/n, n; else print d ": no stats lines"}'
}

echo "== speed ($steps steps each)"
speed cpu
[[ $cpu_only == 1 ]] || speed "$device"
