using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Ect.Actors.Configuration;
using Ect.Actors.Daemon;
using Ect.Actors.Engine;
using Ect.Actors.Run;

namespace Ect.Bench;

/// <summary>
/// `daemon-throughput [STEPS] [--set KEY=VALUE]...`: the cost of the daemon. Runs the same configuration
/// (default: the default network, Fashion-MNIST, batch 32) as (a) a bare loop (batch source + engine.Step, nothing
/// else) and (b) `ect train`'s daemon in-process (actors, prefetching loader, journal, checkpoints every
/// 10 steps, stats consumers), and reports images/s of both over the same steps (step 1 excluded: warm-up), the
/// ratio, and the time one checkpoint capture holds the trainer thread versus one step.
/// </summary>
public sealed class DaemonThroughputBench : IBenchmarkVerb
{
    public string Name => "daemon-throughput";
    public string Description => "ect train's daemon vs a bare TrainStep loop: images/s ratio and checkpoint stall";

    public int Run(string[] args)
    {
        int steps = args.Length > 0 && int.TryParse(args[0], out var n) ? n : 20;
        var sets = new List<string> { "display.mode=off", "control.enabled=off", $"pretrain.steps={steps}", "tuning.steps=0",
            "checkpoint.every-steps=10", "evaluation.every-steps=0", "evaluation.evaluators=[]" };
        for (int i = 0; i < args.Length - 1; i++) if (args[i] == "--set") sets.Add(args[i + 1]);
        var settings = RunSettings.From(EctConfiguration.Load(null, sets));
        var factory = Engines.ForSettings(settings);
        Console.WriteLine($"config: engine {settings.Engine}, batch {settings.BatchSize}, threads {settings.Threads}, {steps} steps, " +
                          $"network {settings.Config.GetString("ect.network.type")} ch {settings.Config.GetInt("ect.network.model-channels")}; machine: {Environment.ProcessorCount} cores");

        int rounds = args.Contains("--rounds") ? int.Parse(args[Array.IndexOf(args, "--rounds") + 1]) : 2;
        var results = new List<(double Bare, double Daemon)>();
        for (int round = 0; round < rounds; round++)
        {
            // Alternating bare / daemon rounds: a machine shared with other work slows both alike.
            var r = Round(settings, factory, steps, daemonFirst: round % 2 == 1);
            if (r is null) return 1;
            results.Add(r.Value);
        }
        var bareMed = Median(results.Select(r => r.Bare)); var daemonMed = Median(results.Select(r => r.Daemon));
        // Each round's ratio compares runs minutes apart; the median of those ratios is the least noisy summary on a
        // machine whose speed drifts (a shared VM host): the per-round list shows the spread.
        var ratios = results.Select(r => r.Daemon / r.Bare * 100).ToList();
        Console.WriteLine($"median over {rounds} rounds: bare {bareMed:F2} img/s, daemon {daemonMed:F2} img/s; " +
                          $"per-round ratios {string.Join(", ", ratios.Select(r => r.ToString("F1", CultureInfo.InvariantCulture)))} %, median ratio {Median(ratios):F1} % (goal >= 95 %)");
        return 0;
    }

    private static double Median(IEnumerable<double> xs) { var a = xs.Order().ToArray(); return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2; }

    private static (double Bare, double Daemon)? Round(RunSettings settings, EngineFactory factory, int steps, bool daemonFirst)
    {
        // (a) the bare loop, on a thread of its own that ends with it, as the daemon's trainer has: libgomp keeps an
        // OpenMP thread pool per thread that ran a parallel region until that thread exits, and once it manages more
        // threads than there are cores its workers stop spinning between regions (throttled), which slows every
        // later 2-thread step. A bare loop on the main thread would leave its pool behind for the daemon's run.
        double bare = 0, stepSeconds = 0, captureSeconds = 0;
        ProcStat bareCost = default;
        var bareThread = new Thread(() =>
        {
            var bareDir = Directory.CreateTempSubdirectory("ect-bench-bare-").FullName;
            var (engine, source) = factory(settings, bareDir);
            engine.SetPhase(Phases.Pretrain);
            engine.SetLearningRate(settings.PretrainLr);
            source.Restore(source.InitialState);
            var sw = new Stopwatch();
            var dataSw = new Stopwatch();
            ProcStat p0 = default;
            for (int i = 0; i < steps; i++)
            {
                if (i == 1) { sw.Start(); p0 = ProcStat.Now(); }
                if (i >= 1) dataSw.Start();
                using var b = source.Next();
                dataSw.Stop();
                engine.Step(b);
            }
            sw.Stop();
            bareCost = ProcStat.Now() - p0;
            Console.WriteLine($"bare loop: batch assembly {dataSw.Elapsed.TotalMilliseconds / (steps - 1):F1} ms/step of {sw.Elapsed.TotalMilliseconds / (steps - 1):F1}");
            bare = (steps - 1) * settings.BatchSize / sw.Elapsed.TotalSeconds;
            stepSeconds = sw.Elapsed.TotalSeconds / (steps - 1);
            var c0 = Stopwatch.StartNew();
            using (engine.Capture(new Dictionary<string, string> { ["sampler"] = "x", ["step"] = "0" })) captureSeconds = c0.Elapsed.TotalSeconds;
            engine.Dispose(); source.Dispose();
        }) { Name = "bare-loop" };

        // (b) the daemon. Odd rounds run it first: a machine whose speed drifts then favours neither side.
        var runDir = Directory.CreateTempSubdirectory("ect-bench-daemon-").FullName;
        if (!daemonFirst) { bareThread.Start(); bareThread.Join(); }
        var d0 = ProcStat.Now();
        var outcome = RunDaemon.RunAsync(settings, runDir, factory, CancellationToken.None, TextWriter.Null).GetAwaiter().GetResult();
        // Whole daemon run (start-up, step 1 and the final checkpoint included): per step, an upper bound.
        var daemonCost = ProcStat.Now() - d0;
        if (outcome.ExitCode != 0) { Console.WriteLine(outcome.Message); return null; }
        if (daemonFirst) { bareThread.Start(); bareThread.Join(); }
        var times = File.ReadLines(Path.Combine(runDir, "stats.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .ToDictionary(e => e.GetProperty("step").GetInt64(), e => DateTimeOffset.Parse(e.GetProperty("time").GetString()!, CultureInfo.InvariantCulture));
        var daemonSeconds = (times[steps] - times[1]).TotalSeconds;
        var daemon = (steps - 1) * settings.BatchSize / daemonSeconds;

        Console.WriteLine($"round order         : {(daemonFirst ? "daemon, bare" : "bare, daemon")}");
        Console.WriteLine($"bare TrainStep loop : {bare,8:F2} img/s ({stepSeconds * 1000:F1} ms/step)");
        Console.WriteLine($"ect train (daemon)  : {daemon,8:F2} img/s");
        Console.WriteLine($"ratio daemon / bare : {daemon / bare * 100,8:F1} %  (goal >= 95 %)");
        Console.WriteLine($"per step, bare      : {bareCost.Per(steps - 1)}");
        Console.WriteLine($"per step, daemon    : {daemonCost.Per(steps)}  (whole run incl. start-up)");
        Console.WriteLine($"checkpoint capture  : {captureSeconds * 1000,8:F1} ms on the trainer thread = {captureSeconds / stepSeconds:F2} steps (goal < 1)");
        return (bare, daemon);
    }
}

/// <summary>
/// The process's CPU time and page faults from /proc/self/stat: where a slower run spends its time (user CPU in
/// the kernels, system CPU in page faults and zeroing, or neither: waiting).
/// </summary>
internal readonly record struct ProcStat(long MinorFaults, double UserSeconds, double SystemSeconds)
{
    private const double Tick = 100.0; // USER_HZ on Linux

    public static ProcStat Now()
    {
        var text = File.ReadAllText("/proc/self/stat");
        var f = text[(text.LastIndexOf(')') + 2)..].Split(' '); // fields from 3 (state) on
        return new ProcStat(long.Parse(f[7]), long.Parse(f[11]) / Tick, long.Parse(f[12]) / Tick);
    }

    public static ProcStat operator -(ProcStat a, ProcStat b) =>
        new(a.MinorFaults - b.MinorFaults, a.UserSeconds - b.UserSeconds, a.SystemSeconds - b.SystemSeconds);

    public string Per(int steps) =>
        $"{MinorFaults / (double)steps,8:F0} minor faults, {UserSeconds / steps * 1000,6:F0} ms user, {SystemSeconds / steps * 1000,6:F0} ms system CPU";
}
