using System.Diagnostics;
using System.Globalization;
using Ect.Compute.Losses;
using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using Ect.Compute.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Bench;

/// <summary>
/// Images/s of a full ECT training step (two forwards, one backward, RAdam, EMA) against a plain EDM diffusion
/// step (one forward, one backward, Adam, EMA), plus the process RSS at step 100 and at the last step, its peak
/// (VmHWM), the growth from step 500 to the last step and the means of the 100-step windows from step 500 and the last
/// (issue 21 point 5, on a quiet machine: `dotnet run -c Release --project bench/Ect.Bench -- trainstep steps=2000
/// warmup=0 mode=ect threads=1`).
/// Network: DDPM++ scaled down (model_channels 32, channel_mult [1,2,2], 2 blocks, attention at 16, 1 channel,
/// 32x32, dropout 0.1); batch 32.
/// Args: steps=N (timed steps per mode, default 120), threads=T (2), batch=B (32), mode=both|ect|edm, warmup=W (3).
/// </summary>
public sealed class TrainStepBench : IBenchmarkVerb
{
    public string Name => "trainstep";
    public string Description => "ECT vs EDM training step images/s and RSS (args: steps=120 threads=2 batch=32 mode=both warmup=3)";

    public int Run(string[] args)
    {
        var opts = args.Select(a => a.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
        int steps = int.Parse(opts.GetValueOrDefault("steps", "120"), CultureInfo.InvariantCulture);
        int threads = int.Parse(opts.GetValueOrDefault("threads", "2"), CultureInfo.InvariantCulture);
        int batch = int.Parse(opts.GetValueOrDefault("batch", "32"), CultureInfo.InvariantCulture);
        int warmup = int.Parse(opts.GetValueOrDefault("warmup", "3"), CultureInfo.InvariantCulture);
        string mode = opts.GetValueOrDefault("mode", "both");
        torch.set_num_threads(threads);
        Console.WriteLine($"trainstep: batch {batch}, {threads} thread(s), {steps} timed steps after {warmup} warm-up, {Environment.ProcessorCount} logical CPUs");

        var results = new List<(string Mode, double Sps)>();
        Console.WriteLine($"load average at start: {File.ReadAllText("/proc/loadavg").Trim()}");
        if (mode is "both" or "edm") results.Add(("edm", RunMode("edm", steps, batch, warmup)));
        if (mode is "both" or "ect") results.Add(("ect", RunMode("ect", steps, batch, warmup)));
        if (results.Count == 2)
            Console.WriteLine($"ECT / EDM median step time ratio: {results[1].Sps / results[0].Sps:F3} (target <= 1.4)");
        return 0;
    }

    private static double RunMode(string mode, int steps, int batch, int warmup)
    {
        var cfg = BenchNetwork.Config();
        torch.random.manual_seed(0);
        Precond net = mode == "ect" ? new EctPrecond(cfg) : new EdmPrecond(cfg);
        Precond ema = mode == "ect" ? new EctPrecond(cfg) : new EdmPrecond(cfg);
        ITrainingLoss loss = mode == "ect" ? new EctLoss(new MappingFunction(q: 256)) : new EdmLoss();
        var opt = mode == "ect" ? new OptimizerConfig(OptimizerKind.RAdam, 1e-4) : new OptimizerConfig(OptimizerKind.Adam, 1e-3);
        using var step = new TrainStep(net, ema, loss, new TrainStepConfig(batch, opt, new EmaConfig(Beta: 0.9993), Seed: 1));
        long nParams = net.parameters().Sum(p => p.numel());
        Console.WriteLine($"[{mode}] {nParams:N0} parameters");

        var sw = new Stopwatch();
        // CPU time is reported next to wall time: on a shared, loaded machine it is the steadier measure.
        TimeSpan cpu0 = TimeSpan.Zero;
        double rss100 = double.NaN, rss500 = double.NaN;
        // RSS oscillates by hundreds of MiB step to step (allocator reuse), so growth is also judged on window means.
        var rssWindows = new SortedDictionary<int, List<double>>();
        int redo = 0;
        var durations = new List<double>();
        for (int i = 0; i < warmup + steps; i++)
        {
            if (i == warmup) { sw.Start(); cpu0 = Process.GetCurrentProcess().TotalProcessorTime; }
            using var g = new Generator((ulong)i);
            using var x = rand(new long[] { batch, 1, 32, 32 }, generator: g) * 2 - 1;
            var s = step.Step(x);
            redo += s.RedoCount;
            if (i >= warmup) durations.Add(s.Duration.TotalSeconds);
            int done = i + 1;
            double rss = RssMiB();
            if (done == 100) rss100 = rss;
            if (done == 500) rss500 = rss;
            if (!rssWindows.TryGetValue(done / 100, out var window)) rssWindows[done / 100] = window = [];
            window.Add(rss);
            if (done % 5 == 0 || done <= 3 || done == warmup + steps)
                Console.WriteLine($"[{mode}] step {done,5}  loss {s.LossMean,10:F4}  {s.Duration.TotalMilliseconds,7:F0} ms  RSS {RssMiB(),7:F0} MiB");
        }
        sw.Stop();
        double cpuPerStep = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds / steps;
        double secPerStep = sw.Elapsed.TotalSeconds / steps;
        // The median step time is robust to load spikes from other processes on a shared machine; the ratio uses it.
        durations.Sort();
        double median = durations[durations.Count / 2], min = durations[0];
        Console.WriteLine($"[{mode}] step time median {median:F3} s ({batch / median:F1} img/s), min {min:F3} s ({batch / min:F1} img/s)");
        double rssEnd = RssMiB();
        Console.WriteLine($"[{mode}] {secPerStep:F3} s/step wall, {cpuPerStep:F3} CPU-s/step, {batch / secPerStep:F1} img/s over {steps} steps; redo {redo}; " +
            $"RSS step 100: {rss100:F0} MiB, step {warmup + steps}: {rssEnd:F0} MiB" +
            (double.IsNaN(rss100) ? "" : $" (growth {(rssEnd / rss100 - 1) * 100:F1}%)"));
        Console.WriteLine($"[{mode}] RSS peak (VmHWM) {StatusMiB("VmHWM:"):F0} MiB, final {rssEnd:F0} MiB" +
            (double.IsNaN(rss500) ? "" : $"; step 500: {rss500:F0} MiB, growth step 500 -> {warmup + steps}: {(rssEnd / rss500 - 1) * 100:+0.0;-0.0}%"));
        // Window means of steps 500-599 and of the last full 100-step window: the trend without the oscillation.
        int lastWindow = (warmup + steps) / 100 - 1;
        if (rssWindows.TryGetValue(5, out var w500) && lastWindow > 5 && rssWindows.TryGetValue(lastWindow, out var wLast))
            Console.WriteLine($"[{mode}] RSS window means: steps 500-599 {w500.Average():F0} MiB, steps {lastWindow * 100}-{lastWindow * 100 + 99} " +
                              $"{wLast.Average():F0} MiB (growth {(wLast.Average() / w500.Average() - 1) * 100:+0.0;-0.0}%)");
        return median;
    }

    private static double RssMiB() => StatusMiB("VmRSS:");

    // A kB line of /proc/self/status (VmRSS: resident now, VmHWM: the peak resident size of the process).
    private static double StatusMiB(string key)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
        return double.NaN;
    }
}
