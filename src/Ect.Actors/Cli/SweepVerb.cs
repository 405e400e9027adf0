using System.CommandLine;
using System.Globalization;
using Ect.Actors.Cluster;
using Ect.Actors.Configuration;
using Ect.Actors.Sweeps;
using Spectre.Console;

namespace Ect.Actors.Cli;

/// <summary>
/// `ect sweep plan SPEC.conf`: the runs a sweep spec expands to (checked against default.conf, nothing started);
/// `ect sweep run SPEC.conf --run-root DIR [--slots N] [--threads T]`: runs them on this machine, resumable;
/// `ect sweep results SPEC.conf --run-root DIR`: the table, sweep-results.json and sweep-results.png (metric against
/// compute with the fitted power law and the best run). See <see cref="SweepSpec"/> for the SPEC format.
/// Exit codes: 0 done, 1 a run failed, 2 a bad spec or arguments.
/// </summary>
public sealed class SweepVerb : ICliVerb
{
    public int Order => 65;
    public int UsageErrorExitCode => 2;

    public Command Build()
    {
        var cmd = new Command("sweep", "Many tunings of one base configuration (a grid or list of overlays), compared on one metric.");
        var specArg = () => new Argument<string>("SPEC") { Description = "The sweep's HOCON file: sweep { name, metric, goal, base, set, grid, list, compute-key }." };
        var rootOpt = () => new Option<string>("--run-root") { Description = "The folder that holds one run directory per run (RUN_ROOT/RUN_ID).", Required = true };

        var plan = new Command("plan", "List the runs the SPEC expands to, each with its overlay; checks every key and value, starts nothing.");
        var planSpec = specArg(); plan.Arguments.Add(planSpec);
        plan.SetAction(r => Plan(r.GetValue(planSpec)!));
        cmd.Subcommands.Add(plan);

        var run = new Command("run", "Run every unfinished run of the SPEC on this machine (an `ect train` per run, resumable: start it again to continue).");
        var runSpec = specArg(); var runRoot = rootOpt();
        var slots = new Option<int>("--slots") { Description = "Runs at once (default: the cores / --threads).", DefaultValueFactory = _ => 0 };
        var threads = new Option<int>("--threads") { Description = "Threads per run (default 1).", DefaultValueFactory = _ => 1 };
        run.Arguments.Add(runSpec); run.Options.Add(runRoot); run.Options.Add(slots); run.Options.Add(threads);
        run.SetAction(r => Run(r.GetValue(runSpec)!, r.GetValue(runRoot)!, r.GetValue(slots), r.GetValue(threads)));
        cmd.Subcommands.Add(run);

        var results = new Command("results", "The sweep's table (state, step, images, CPU time, metric per run), sweep-results.json and .png in the run root. " +
            "`results SPEC --run-root DIR` on this machine, `results NAME --cluster HOST:PORT` for a sweep of a cluster.");
        var resSpec = new Argument<string>("SPEC|NAME") { Description = "The sweep's HOCON file (with --run-root), or its name (with --cluster)." };
        var resRoot = new Option<string>("--run-root") { Description = "The folder that holds one run directory per run (RUN_ROOT/RUN_ID)." };
        var resTable = new Option<string>("--table") { Description = "Read the runs from a saved sweep-results.json instead of the run root " +
            "(a sweep whose run directories are gone); writes sweep-results.json and .png beside it, or into --run-root when given." };
        var resCluster = ClusterOption(); resCluster.Required = false;
        var resTls = ClusterTls.Options(); var resToken = TokenFileOption();
        results.Arguments.Add(resSpec); results.Options.Add(resRoot); results.Options.Add(resTable); results.Options.Add(resCluster); results.Options.Add(resToken);
        foreach (var o in resTls.All) results.Options.Add(o);
        results.SetAction(r => r.GetValue(resCluster) is { } c
            ? ClusterSweepCommands.Results(r.GetValue(resSpec)!, c, resTls.From(r), r.GetValue(resToken))
            : r.GetValue(resTable) is { } table ? Results(r.GetValue(resSpec)!, r.GetValue(resRoot) ?? Path.GetDirectoryName(Path.GetFullPath(table))!, table)
            : r.GetValue(resRoot) is { } root ? Results(r.GetValue(resSpec)!, root) : MissingRoot());
        cmd.Subcommands.Add(results);

        var submit = new Command("submit", "Submit the SPEC's runs to a cluster of `ect node`s (checked here first: nothing of a bad spec is submitted).");
        var subSpec = specArg(); var subCluster = ClusterOption(); var subTls = ClusterTls.Options(); var subToken = TokenFileOption();
        submit.Arguments.Add(subSpec); submit.Options.Add(subCluster); submit.Options.Add(subToken);
        foreach (var o in subTls.All) submit.Options.Add(o);
        submit.SetAction(r => ClusterSweepCommands.Submit(r.GetValue(subSpec)!, r.GetValue(subCluster)!, subTls.From(r), r.GetValue(subToken)));
        cmd.Subcommands.Add(submit);

        foreach (var (verb, help) in new[] { ("status", "A sweep's runs on the cluster: run, node, phase, attempts, step, last metric."),
                                             ("cancel", "Cancel a sweep: its running runs checkpoint and stop, the others never start.") })
        {
            var c = new Command(verb, help);
            var name = new Argument<string>("NAME") { Description = "The sweep's name (sweep.name of its SPEC)." };
            var cluster = ClusterOption(); var tls = ClusterTls.Options(); var token = TokenFileOption();
            c.Arguments.Add(name); c.Options.Add(cluster); c.Options.Add(token);
            foreach (var o in tls.All) c.Options.Add(o);
            c.SetAction(r => verb == "status"
                ? ClusterSweepCommands.Status(r.GetValue(name)!, r.GetValue(cluster)!, tls.From(r), r.GetValue(token))
                : ClusterSweepCommands.Cancel(r.GetValue(name)!, r.GetValue(cluster)!, tls.From(r), r.GetValue(token)));
            cmd.Subcommands.Add(c);
        }
        return cmd;
    }

    private static Option<string> ClusterOption() =>
        new("--cluster") { Description = "HOST:PORT[,...] of nodes of the sweep cluster (`ect node`).", Required = true };

    /// <summary>--token-file: the cluster's token (RUN_ROOT/cluster.token); checked when the command runs, so its refusal names the file.</summary>
    internal static Option<string> TokenFileOption() =>
        new("--token-file") { Description = "The cluster's token file, RUN_ROOT/cluster.token (written by the first `ect node`; with --cluster)." };

    private static int MissingRoot()
    {
        System.Console.Error.WriteLine("ect sweep results: give --run-root DIR (a sweep run on this machine) or --cluster HOST:PORT (a sweep of a cluster).");
        return 2;
    }

    internal static SweepSpec? Load(string path)
    {
        try { return SweepSpec.Load(path); }
        catch (ConfigurationException e) { Console.Error.WriteLine($"ect sweep: {e.Message}"); return null; }
    }

    public static int Plan(string specPath)
    {
        if (Load(specPath) is not { } spec) return 2;
        var table = new Table().AddColumns("run", "overlay");
        foreach (var r in spec.Runs)
            table.AddRow(Markup.Escape(r.Id), Markup.Escape(r.Overlay.Count == 0 ? "(base)" : string.Join(", ", r.Overlay.Select(kv => $"{kv.Key}={kv.Value}"))));
        Out().Write(table);
        System.Console.WriteLine($"sweep {spec.Name}: {spec.Runs.Count} run(s), metric {spec.Metric} ({(spec.Minimize ? "lower" : "higher")} is better)" +
                                 (spec.BaseFiles.Count > 0 ? $", base {string.Join(", ", spec.BaseFiles)}" : ""));
        return 0;
    }

    public static int Run(string specPath, string runRoot, int slots, int threads)
    {
        if (Load(specPath) is not { } spec) return 2;
        if (threads < 1 || slots < 0) { System.Console.Error.WriteLine($"ect sweep run: --threads {threads} / --slots {slots}: use threads >= 1 and slots >= 1."); return 2; }
        if (slots == 0) slots = Math.Max(1, Environment.ProcessorCount / threads);
        using var stop = new CancellationTokenSource();
        System.Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM,
            c => { c.Cancel = true; stop.Cancel(); });
        var executor = new LocalSweepExecutor(spec, Path.GetFullPath(runRoot), slots, threads, System.Console.Out);
        int failed;
        try { failed = executor.RunAsync(stop.Token).GetAwaiter().GetResult(); }
        catch (ConfigurationException e) { System.Console.Error.WriteLine($"ect sweep run: {e.Message}"); return 2; }
        Results(specPath, runRoot);
        if (stop.IsCancellationRequested) System.Console.WriteLine($"sweep {spec.Name}: stopped; `ect sweep run {specPath} --run-root {runRoot}` continues it.");
        return failed == 0 ? 0 : 1;
    }

    public static int Results(string specPath, string runRoot, string? savedTable = null)
    {
        if (Load(specPath) is not { } spec) return 2;
        IReadOnlyList<SweepRunResult> rows;
        if (savedTable is null) rows = SweepResults.Read(spec, Path.GetFullPath(runRoot));
        else
            try { rows = SweepResults.ReadTable(spec, savedTable); }
            catch (ConfigurationException e) { System.Console.Error.WriteLine($"ect sweep results: {e.Message}"); return 2; }
        var table = new Table().AddColumns("run", "state", "step", "ETA", "images", "CPU s", spec.Metric, "overlay");
        var best = SweepResults.Best(spec, rows);
        foreach (var r in rows)
        {
            // The training time left of a run training now (from a saved table: none); its final evaluation comes after.
            var left = savedTable is null && r.State == "training" && spec.Runs.FirstOrDefault(x => x.Id == r.Run) is { } run
                       && SweepProgress.Read(Path.Combine(Path.GetFullPath(runRoot), r.Run)) is { } live ? SweepProgress.Left(spec, run, live) : null;
            table.AddRow(Markup.Escape(r.Run + (r == best ? " *" : "")), Markup.Escape(r.State), r.Step.ToString(CultureInfo.InvariantCulture),
                SweepProgress.Format(left), r.Images.ToString("F0", CultureInfo.InvariantCulture), r.CpuSeconds?.ToString("F0", CultureInfo.InvariantCulture) ?? "-",
                r.Metric?.ToString("G5", CultureInfo.InvariantCulture) ?? "-",
                Markup.Escape(string.Join(", ", r.Overlay.Select(kv => $"{kv.Key}={kv.Value}"))));
        }
        Out().Write(table);
        if (Directory.Exists(runRoot))
            foreach (var f in SweepResults.Write(spec, Path.GetFullPath(runRoot), rows)) System.Console.WriteLine($"wrote {f}");
        var axis = SweepResults.ComputeAxis(spec, rows);
        if (SweepResults.Fit(axis) is { } fit)
            System.Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"power law: {spec.Metric} = {fit.A:G4} x images^{fit.B:F3} (R2 {fit.R2:F3}, {fit.Points} runs of the compute axis: {string.Join(", ", axis.Select(r => r.Run))})"));
        if (best is not null) System.Console.WriteLine($"best: {best.Run} ({spec.Metric} {best.Metric:G5})");
        return 0;
    }

    internal static IAnsiConsole Out()
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(System.Console.Out) });
        if (System.Console.IsOutputRedirected) console.Profile.Width = 320;
        return console;
    }
}
