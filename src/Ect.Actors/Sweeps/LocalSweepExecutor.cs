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
            // Valid JSON of another shape (null runs, a run without its sets) is not a manifest either.
            if (old is not null && (old.Runs is null || old.Runs.Any(r => r?.Id is null || r.Sets is null || r.Configs is null)))
                throw new ConfigurationException($"{path}: not a sweep manifest (its runs lack id, sets or configs); use another --run-root.");
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
        log.WriteLine($"{run.Id}: ect train ({string.Join(", ", run.Overlay.Select(kv => $"{kv.Key}={kv.Value}"))})");
        using var child = TrainChild.Start(ect ?? Self(), spec.BaseFiles, spec.SetsOf(run), threads, dir);
        // A stop asks the child to end at its next step boundary (SIGTERM: it writes a checkpoint and exits 0/1).
        using var reg = stop.Register(child.Terminate);
        var (code, cpu) = await child.WaitAsync();
        log.WriteLine($"{run.Id}: exit {code} after {cpu:F0} CPU-s{(code == 0 ? "" : $" (see {Path.Combine(dir, "sweep-train.log")})")}");
        return code == 0;
    }
}
