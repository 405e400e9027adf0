using System.Diagnostics;
using System.Text.Json;
using Ect.Actors.Configuration;

namespace Ect.Actors.Sweeps;

/// <summary>
/// Runs a sweep on this machine: every run that has not finished is an `ect train` child process on RUN_ROOT/RUN_ID,
/// at most <c>slots</c> at once, each at <c>threads</c> threads (two one-thread jobs use a 2-core machine well; one
/// two-thread job beside anything collapses). Nothing is lost on an interruption: each run is an ordinary run
/// directory that `ect train` resumes exactly, so starting the sweep again continues every unfinished run from its
/// last checkpoint. RUN_ROOT/sweep.json records the sweep's runs; a run root holding another sweep of the same name
/// whose runs differ is refused. Until issue 19's cluster lands, this is the one-machine executor; a cluster node
/// will start the same `ect train` work as sharded entities.
/// </summary>
public sealed class LocalSweepExecutor(SweepSpec spec, string runRoot, int slots, int threads, TextWriter log,
    (string File, IReadOnlyList<string> Prefix)? ect = null)
{
    public const string ManifestFile = "sweep.json";

    private sealed record Manifest(string Sweep, string Spec, string Metric, IReadOnlyList<ManifestRun> Runs);
    private sealed record ManifestRun(string Id, IReadOnlyList<string> Sets, IReadOnlyList<string> Configs);

    /// <summary>Checks RUN_ROOT against the spec and records the sweep there. Throws ConfigurationException on a conflict.</summary>
    public void Prepare()
    {
        Directory.CreateDirectory(runRoot);
        var path = Path.Combine(runRoot, ManifestFile);
        var mine = new Manifest(spec.Name, spec.SpecPath, spec.Metric,
            spec.Runs.Select(r => new ManifestRun(r.Id, spec.SetsOf(r), spec.BaseFiles)).ToList());
        if (File.Exists(path))
        {
            Manifest? old;
            try { old = JsonSerializer.Deserialize<Manifest>(File.ReadAllText(path)); }
            catch (JsonException e) { throw new ConfigurationException($"{path}: not a sweep manifest ({e.Message}); use another --run-root."); }
            if (old is null || old.Sweep != spec.Name)
                throw new ConfigurationException($"{path}: the run root holds sweep \"{old?.Sweep}\", not \"{spec.Name}\": use another --run-root.");
            foreach (var o in old.Runs)
                if (mine.Runs.FirstOrDefault(r => r.Id == o.Id) is { } m && (!m.Sets.SequenceEqual(o.Sets) || !m.Configs.SequenceEqual(o.Configs)))
                    throw new ConfigurationException(
                        $"{path}: run {o.Id} exists with another configuration ({string.Join(" ", o.Sets)}) than the spec gives now " +
                        $"({string.Join(" ", m.Sets)}): rename the sweep or use another --run-root.");
        }
        Ect.Compute.IO.AtomicFile.Write(path, s => JsonSerializer.Serialize(s, mine, new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Runs every unfinished run to its end (or until <paramref name="stop"/>); returns how many failed.</summary>
    public async Task<int> RunAsync(CancellationToken stop)
    {
        Prepare();
        var todo = new Queue<SweepRun>(spec.Runs.Where(r => !Finished(r)));
        log.WriteLine($"sweep {spec.Name}: {spec.Runs.Count} runs, {spec.Runs.Count - todo.Count} finished, {todo.Count} to run, {slots} slot(s) x {threads} thread(s); run root {runRoot}");
        var running = new List<Task<bool>>();
        int failed = 0;
        while ((todo.Count > 0 || running.Count > 0))
        {
            while (todo.Count > 0 && running.Count < slots && !stop.IsCancellationRequested) running.Add(RunOneAsync(todo.Dequeue(), stop));
            if (running.Count == 0) break;
            var done = await Task.WhenAny(running);
            running.Remove(done);
            if (!await done) failed++;
        }
        return failed;
    }

    private bool Finished(SweepRun run) =>
        SweepResults.Read(spec, runRoot).First(r => r.Run == run.Id).State == "finished";

    /// <summary>The command that runs this `ect` again: the apphost, or `dotnet ect.dll`.</summary>
    public static (string File, IReadOnlyList<string> Prefix) Self()
    {
        var process = Environment.ProcessPath ?? "ect";
        var entry = System.Reflection.Assembly.GetEntryAssembly()?.Location;
        return Path.GetFileNameWithoutExtension(process) == "dotnet" && entry is { Length: > 0 } ? (process, [entry]) : (process, []);
    }

    private async Task<bool> RunOneAsync(SweepRun run, CancellationToken stop)
    {
        await Task.Yield(); // the child's wait below blocks: leave the caller's thread first
        return await Task.Run(() => RunOne(run, stop));
    }

    private async Task<bool> RunOne(SweepRun run, CancellationToken stop)
    {
        var dir = Path.Combine(runRoot, run.Id);
        Directory.CreateDirectory(dir);
        var (file, prefix) = ect ?? Self();
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in prefix) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("train");
        foreach (var c in spec.BaseFiles) { psi.ArgumentList.Add("--config"); psi.ArgumentList.Add(c); }
        foreach (var s in spec.SetsOf(run).Append($"ect.run.threads={threads}").Append("ect.display.mode=plain"))
        { psi.ArgumentList.Add("--set"); psi.ArgumentList.Add(s); }
        psi.ArgumentList.Add("--run-dir"); psi.ArgumentList.Add(dir);
        var record = SweepRunRecord.Read(dir) ?? new SweepRunRecord(run.Id, 0, null, 0);
        log.WriteLine($"{run.Id}: ect train ({string.Join(", ", run.Overlay.Select(kv => $"{kv.Key}={kv.Value}"))})");
        using var output = new StreamWriter(Path.Combine(dir, "sweep-train.log"), append: true) { AutoFlush = true };
        using var p = Process.Start(psi)!;
        var copy = Task.WhenAll(Pump(p.StandardOutput, output), Pump(p.StandardError, output));
        // A stop asks the child to end at its next step boundary (SIGTERM: it writes a checkpoint and exits 0/1).
        using var reg = stop.Register(() => { try { Posix.Terminate(p.Id); } catch (Exception) { } });
        // CPU time is read from /proc while the child lives (an exited child's is gone): sampled every second.
        double cpu = 0;
        while (!p.WaitForExit(1000))
            try { cpu = p.TotalProcessorTime.TotalSeconds; } catch (InvalidOperationException) { }
        await copy;
        record = record with { Invocations = record.Invocations + 1, LastExitCode = p.ExitCode, CpuSeconds = record.CpuSeconds + cpu };
        record.Write(dir);
        log.WriteLine($"{run.Id}: exit {p.ExitCode} after {cpu:F0} CPU-s{(p.ExitCode == 0 ? "" : $" (see {Path.Combine(dir, "sweep-train.log")})")}");
        return p.ExitCode == 0;
    }

    private static async Task Pump(StreamReader from, StreamWriter to)
    {
        string? line;
        while ((line = await from.ReadLineAsync()) is not null) lock (to) to.WriteLine(line);
    }

    private static class Posix
    {
        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)] private static extern int kill(int pid, int sig);
        public static void Terminate(int pid) => kill(pid, 15);
    }
}
