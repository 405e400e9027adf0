using System.Diagnostics;
using System.Globalization;
using Ect.Compute.Preconditioning;
using Ect.Compute.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Bench;

/// <summary>
/// Images/s of 1-step and 2-step consistency sampling (ConsistencySampler, t = [80] and [80, 0.821], eval mode, no
/// grad) with the bench network (<see cref="BenchNetwork"/>), random weights: what official_bench.py's SAMPLE line
/// times (generator_fn, t_max 80). Prints "SAMPLE N-step ... images/s=X" lines that bench/side-by-side.sh reads.
/// Args: batch=32 reps=10 warmup=2 threads=2.
/// </summary>
public sealed class SampleBench : IBenchmarkVerb
{
    public string Name => "sample";
    public string Description => "1-step and 2-step sampling images/s of the bench network (args: batch=32 reps=10 warmup=2 threads=2)";

    public int Run(string[] args)
    {
        int batch = int.Parse(BenchNetwork.Arg(args, "batch", "32"), CultureInfo.InvariantCulture);
        int reps = int.Parse(BenchNetwork.Arg(args, "reps", "10"), CultureInfo.InvariantCulture);
        int warmup = int.Parse(BenchNetwork.Arg(args, "warmup", "2"), CultureInfo.InvariantCulture);
        int threads = int.Parse(BenchNetwork.Arg(args, "threads", "2"), CultureInfo.InvariantCulture);
        torch.set_num_threads(threads);
        torch.random.manual_seed(0);
        using var net = new EctPrecond(BenchNetwork.Config());
        Console.WriteLine($"sample: batch {batch}, {threads} thread(s), {reps} timed repeats after {warmup} warm-up; load average {File.ReadAllText("/proc/loadavg").Trim()}");
        foreach (var tSteps in new[] { new[] { 80.0 }, new[] { 80.0, 0.821 } })
        {
            var times = new List<double>();
            for (int i = 0; i < warmup + reps; i++)
            {
                using var scope = NewDisposeScope();
                using var g = new Generator((ulong)i);
                var z = randn(new long[] { batch, BenchNetwork.Channels, BenchNetwork.Resolution, BenchNetwork.Resolution }, generator: g);
                var sw = Stopwatch.StartNew();
                var x = ConsistencySampler.Sample(net, z, tSteps, generator: g);
                _ = x.sum().item<double>();
                if (i >= warmup) times.Add(sw.Elapsed.TotalSeconds);
            }
            double med = BenchNetwork.Median(times);
            Console.WriteLine($"SAMPLE {tSteps.Length}-step batch={batch} reps={reps}  median={med * 1e3:F1} ms  images/s={batch / med:F2}  RSS {BenchNetwork.RssMiB():F0} MiB");
        }
        return 0;
    }
}
