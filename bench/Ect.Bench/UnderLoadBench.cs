using System.Diagnostics;
using System.Globalization;
using Ect.Compute.Losses;
using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using Ect.Compute.Runtime;
using Ect.Compute.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Bench;

/// <summary>
/// Steadiness under load (issue 21, target 3): the ECT training step of the bench network at T threads, timed quiet
/// and beside a one-core CPU hog (`yes &gt; /dev/null`), alternating (quiet first in odd pairs, hog first in even
/// ones). Prints the median img/s of each condition over all pairs and their ratio (target &gt;= 45%). The OpenMP wait
/// policy in effect is printed: Main sets OMP_WAIT_POLICY=PASSIVE unless the environment has one (run with
/// OMP_WAIT_POLICY=ACTIVE to see libgomp's default).
/// Args: pairs=3 steps=15 (timed steps per phase) warmup=3 threads=2 batch=32.
/// </summary>
public sealed class UnderLoadBench : IBenchmarkVerb
{
    public string Name => "underload";
    public string Description => "ECT step img/s quiet vs beside a one-core `yes` hog, alternating (args: pairs=3 steps=15 warmup=3 threads=2 batch=32)";

    public int Run(string[] args)
    {
        int pairs = int.Parse(BenchNetwork.Arg(args, "pairs", "3"), CultureInfo.InvariantCulture);
        int steps = int.Parse(BenchNetwork.Arg(args, "steps", "15"), CultureInfo.InvariantCulture);
        int warmup = int.Parse(BenchNetwork.Arg(args, "warmup", "3"), CultureInfo.InvariantCulture);
        int threads = int.Parse(BenchNetwork.Arg(args, "threads", "2"), CultureInfo.InvariantCulture);
        int batch = int.Parse(BenchNetwork.Arg(args, "batch", "32"), CultureInfo.InvariantCulture);
        torch.set_num_threads(threads);
        LibTorchBackends.Configure();
        Console.WriteLine($"underload: batch {batch}, {threads} thread(s), {pairs} pairs of {steps} timed steps; OMP_WAIT_POLICY={OpenMpWaitPolicy.NativeValue("OMP_WAIT_POLICY") ?? "(unset)"}" +
                          $"{(OpenMpWaitPolicy.LoadedTooLate ? " (set after libgomp loaded: not in effect)" : "")}; {Environment.ProcessorCount} CPUs; load average {File.ReadAllText("/proc/loadavg").Trim()}");

        torch.random.manual_seed(0);
        var cfg = BenchNetwork.Config();
        using var step = new TrainStep(new EctPrecond(cfg), new EctPrecond(cfg), new EctLoss(new MappingFunction(q: 256)),
            new TrainStepConfig(batch, new OptimizerConfig(OptimizerKind.RAdam, 1e-4), new EmaConfig(Beta: 0.9993), Seed: 1));
        int index = 0;
        double Phase(int n)
        {
            var times = new List<double>();
            for (int i = 0; i < n; i++, index++)
            {
                using var g = new Generator((ulong)index);
                using var x = rand(new long[] { batch, BenchNetwork.Channels, BenchNetwork.Resolution, BenchNetwork.Resolution }, generator: g) * 2 - 1;
                times.Add(step.Step(x).Duration.TotalSeconds);
            }
            return batch / BenchNetwork.Median(times);
        }

        Phase(warmup);
        var quiet = new List<double>();
        var hogged = new List<double>();
        for (int p = 0; p < pairs; p++)
        {
            foreach (bool hog in p % 2 == 0 ? new[] { false, true } : new[] { true, false })
            {
                using var hogProcess = hog ? StartHog() : null;
                double ips = Phase(steps);
                if (hogProcess is not null) { hogProcess.Kill(); hogProcess.WaitForExit(); }
                (hog ? hogged : quiet).Add(ips);
                Console.WriteLine($"pair {p + 1} {(hog ? "beside yes" : "quiet     ")}: {ips,6:F2} img/s (median step); RSS {BenchNetwork.RssMiB():F0} MiB");
            }
        }
        double q = BenchNetwork.Median(quiet), h = BenchNetwork.Median(hogged);
        Console.WriteLine($"UNDERLOAD quiet median {q:F2} img/s, beside a one-core hog {h:F2} img/s: {100 * h / q:F0}% of quiet (target >= 45%)");
        return 0;
    }

    /// <summary>`yes` writing to /dev/null: one core busy (exec: the started process is the hog itself).</summary>
    private static Process StartHog()
    {
        var psi = new ProcessStartInfo("sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec yes > /dev/null");
        return Process.Start(psi)!;
    }
}
