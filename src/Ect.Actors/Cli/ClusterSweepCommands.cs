using System.Globalization;
using Ect.Actors.Cluster;
using Ect.Actors.Sweeps;
using Spectre.Console;

namespace Ect.Actors.Cli;

/// <summary>
/// `ect sweep submit SPEC --cluster HOST:PORT`, `ect sweep status|cancel NAME --cluster HOST:PORT`,
/// `ect sweep results NAME --cluster HOST:PORT`. Exit codes: 0 done, 1 the cluster refused or did not answer,
/// 2 a bad spec or arguments (nothing submitted).
/// </summary>
internal static class ClusterSweepCommands
{
    public static int Submit(string specPath, string cluster, ClusterTls tls, string? tokenFile)
    {
        if (SweepVerb.Load(specPath) is not { } spec) return 2;
        return WithClient("submit", cluster, tls, tokenFile, async c =>
        {
            var reply = await c.Submit(spec);
            (reply.Ok ? Console.Out : Console.Error).WriteLine(reply.Ok ? reply.Message : $"ect sweep submit: {reply.Message}");
            return reply.Ok ? 0 : 1;
        });
    }

    public static int Cancel(string name, string cluster, ClusterTls tls, string? tokenFile) => WithClient("cancel", cluster, tls, tokenFile, async c =>
    {
        var reply = await c.Cancel(name);
        (reply.Ok ? Console.Out : Console.Error).WriteLine(reply.Ok ? reply.Message : $"ect sweep cancel: {reply.Message}");
        return reply.Ok ? 0 : 1;
    });

    public static int Status(string name, string cluster, ClusterTls tls, string? tokenFile) => WithClient("status", cluster, tls, tokenFile, async c =>
    {
        var s = await c.Status(name);
        if (!s.Found) { Console.Error.WriteLine($"ect sweep status: {s.Message}"); return 1; }
        // Steps and metrics come from the run directories (the shared run root), when this machine sees it.
        var spec = TryLoad(s.SpecPath);
        var rows = TryRead(spec, s.RunRoot);
        var table = new Table().AddColumns("run", "node", "phase", "attempts", "step", s.Metric, "ETA");
        foreach (var r in s.Runs)
        {
            var row = rows?.FirstOrDefault(x => x.Run == r.RunId);
            var (step, eta) = Progress(spec, r.RunId, s.RunRoot, r.Phase == "running");
            table.AddRow(Markup.Escape(r.RunId), Markup.Escape(r.Node.Length > 0 ? r.Node : "-"), Markup.Escape(r.Phase),
                r.Attempts.ToString(CultureInfo.InvariantCulture), (step ?? row?.Step)?.ToString(CultureInfo.InvariantCulture) ?? "-",
                row?.Metric?.ToString("G5", CultureInfo.InvariantCulture) ?? "-", eta ?? "-");
        }
        SweepVerb.Out().Write(table);
        var ended = s.Runs.Count(r => r.Phase is not ("pending" or "released" or "running"));
        Console.WriteLine($"sweep {s.Name}{(s.Cancelled ? " (cancelled)" : "")}: {ended} of {s.Runs.Count} runs ended; " +
                          $"nodes: {string.Join(", ", s.Nodes.Select(n => $"{n.Node} {n.Busy}/{n.Slots} busy"))}; run root {s.RunRoot}" +
                          (rows is null ? " (not readable here: steps and metrics not shown)" : ""));
        return 0;
    });

    public static int Results(string name, string cluster, ClusterTls tls, string? tokenFile) => WithClient("results", cluster, tls, tokenFile, async c =>
    {
        var s = await c.Status(name);
        if (!s.Found) { Console.Error.WriteLine($"ect sweep results: {s.Message}"); return 1; }
        if (!Directory.Exists(s.RunRoot))
        {
            Console.Error.WriteLine($"ect sweep results: the cluster's run root {s.RunRoot} is not visible on this machine: run it where the shared run root is mounted.");
            return 1;
        }
        return SweepVerb.Results(s.SpecPath, s.RunRoot);
    });

    private static SweepSpec? TryLoad(string specPath)
    {
        try { return SweepSpec.Load(specPath); }
        catch (Exception e) when (e is Configuration.ConfigurationException or IOException) { return null; }
    }

    private static IReadOnlyList<SweepRunResult>? TryRead(SweepSpec? spec, string runRoot)
    {
        try { return spec is not null && Directory.Exists(runRoot) ? SweepResults.Read(spec, runRoot) : null; }
        catch (Exception e) when (e is Configuration.ConfigurationException or IOException) { return null; }
    }

    private static (long? Step, string? Eta) Progress(SweepSpec? spec, string runId, string runRoot, bool running)
    {
        if (spec?.Runs.FirstOrDefault(r => r.Id == runId) is not { } run) return (null, null);
        if (SweepProgress.Read(Path.Combine(runRoot, runId)) is not { } live) return (null, null);
        return (live.Step, running && SweepProgress.Left(spec, run, live) is { } left ? SweepProgress.Format(left) : null);
    }

    private static int WithClient(string verb, string cluster, ClusterTls tls, string? tokenFile, Func<SweepClient, Task<int>> act)
    {
        SweepClient client;
        try { client = SweepClient.Connect(cluster, tls, tokenFile); }
        catch (Exception e) when (e is ArgumentException or IOException) { Console.Error.WriteLine($"ect sweep {verb}: {e.Message}"); return 2; }
        try { return act(client).GetAwaiter().GetResult(); }
        catch (TimeoutException e) { Console.Error.WriteLine($"ect sweep {verb}: {e.Message}"); return 1; }
        finally { client.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
    }
}
