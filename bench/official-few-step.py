#!/usr/bin/env python3
"""Times the official ECT code's few-step sampling (training/ct_training_loop.py generator_fn with mid_t, the way
ct_eval.py samples 2 steps: t = 80, then 0.821) on the bench network of bench/side-by-side.sh, reusing the shared
harness (official_bench.py) for the network. The harness times 1 step only; side-by-side.sh runs this for the 2-step
column. Prints one line: "SAMPLE 2-step ... images/s=X".

    ECT_REF_DIR=DIR python3 bench/official-few-step.py --harness /work/shared/harness/official_bench.py \
        [--mid-t 0.821] [--batch 32] [--reps 10] [--threads 2] [--dropout 0.1]
"""
import argparse
import importlib.util
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--harness', required=True)
    ap.add_argument('--mid-t', type=float, nargs='*', default=[0.821])
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--reps', type=int, default=10)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--dropout', type=float, default=0.1)
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    spec = importlib.util.spec_from_file_location('official_bench', a.harness)
    h = importlib.util.module_from_spec(spec)
    sys.modules['official_bench'] = h
    spec.loader.exec_module(h)
    torch = h.torch
    threads = h.set_threads(a.threads)
    torch.manual_seed(a.seed)
    # The bench network of side-by-side.sh / official_bench.py's defaults: DDPM++ 32 ch [1,2,2], 2 blocks, attn 16, 1x32x32.
    ema = h.build_net(32, 1, model_channels=32, channel_mult=[1, 2, 2], num_blocks=2, attn=[16],
                      dropout=a.dropout).eval().requires_grad_(False)
    z = torch.randn([a.batch, 1, 32, 32])
    steps = 1 + len(a.mid_t)
    h.generator_fn(ema, z, t_max=80.0, mid_t=a.mid_t)  # warm-up
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        h.generator_fn(ema, z, t_max=80.0, mid_t=a.mid_t)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f'SAMPLE {steps}-step (generator_fn, t_max=80, mid_t={a.mid_t}, eval) batch={a.batch} reps={a.reps} '
          f'threads={threads} median={med * 1e3:.1f} ms  images/s={a.batch / med:.2f}', flush=True)


if __name__ == '__main__':
    main()
