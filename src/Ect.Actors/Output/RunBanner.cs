using Ect.Actors.Checkpoints;
using System.Globalization;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Run;

namespace Ect.Actors.Output;

/// <summary>
/// The first screen of `ect train`: what is happening, said once before the progress display. Three parts, each
/// printed as soon as it is known: the run directory and how to reach it (before the actor system starts), new run
/// or resumed (when the journal has been replayed), and what is trained on what (when the trainer has built its
/// engine: network, parameters, teacher, data set and size, threads, where the outputs go).
/// </summary>
public sealed class RunBanner
{
    private readonly TextWriter _out;
    private readonly string _runDir;
    private readonly RunSettings _cli;
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _enginePrinted;

    public RunBanner(TextWriter output, string runDir, RunSettings cliSettings)
    {
        _out = output; _runDir = runDir; _cli = cliSettings;
    }

    /// <summary>Completes once the last part has been printed; the progress display starts after it.</summary>
    public Task Done => _done.Task;

    /// <summary>The steps this invocation runs to: the step cap (`--steps N`, ect.run.max-steps) when it is set and
    /// comes before the end of the configured schedule, else the schedule's total.</summary>
    public static long InvocationTarget(RunSettings s) =>
        s.MaxSteps > 0 && s.MaxSteps < s.TotalSteps ? s.MaxSteps : s.TotalSteps;

    /// <summary>Which run (its identity from run.json, and how it was found) in which directory, and its journal.</summary>
    public void Header(RunIdentity identity, string how, string journal)
    {
        var full = Path.GetFullPath(_runDir);
        Write($"ect train: run {identity.Name} (id {identity.Id}, {how}) in {_runDir}" + (full.TrimEnd('/') != _runDir.TrimEnd('/') ? $" ({full})" : ""));
        Write($"  journal    {journal} (stream {identity.PersistenceId})");
    }

    /// <summary>Called when the journal has been replayed (before the trainer starts).</summary>
    public void Recovered(RunState state)
    {
        if (state.Finished)
        {
            Write($"  state      finished at step {state.Step} ({state.Phase})");
            _done.TrySetResult();
            return;
        }
        if (!state.Started)
        {
            Write("  state      new run, starting at step 0");
            return;
        }
        var last = state.LastCheckpoint;
        Write(last is null
            ? $"  state      resumed: no checkpoint was committed yet, so it starts again at step 0 (the journal holds {state.Step} steps)"
            : $"  state      resumed from {last.Path} at step {last.Step} ({last.Phase}, stage {last.Stage}, {last.Kimg:F1} kimg); " +
              "the steps after it are recomputed to the same bits");
    }

    /// <summary>Called on the trainer thread when it has built its engine (once per trainer; printed once).</summary>
    public void Engine(RunSettings s, ITrainingEngine engine, IBatchSource data)
    {
        if (Interlocked.Exchange(ref _enginePrinted, 1) != 0) return;
        try
        {
            var target = InvocationTarget(s);
            Write($"  trains     {Describe(engine)}");
            Write($"  data       {Describe(data)}, batch {s.BatchSize}");
            Write(string.Create(CultureInfo.InvariantCulture,
                $"  schedule   pretraining {s.PretrainSteps} steps (EDM loss, lr {s.PretrainLr:G3}), then ECT tuning {s.TuningSteps} steps (lr {s.TuningLr:G3}, stage doubles every {s.DoubleTicks:G4} ticks); EMA beta {s.EmaBeta:G4}"));
            if (target < s.TotalSteps)
                Write($"  this run   stops at step {target} of {s.TotalSteps} (step cap); `ect train --steps N` with a larger N continues it");
            Write($"  compute    {s.Engine} engine on {DeviceText.Of(engine)}, {s.Threads} thread(s) for training, {s.Evaluation.Threads} for evaluators");
            Write($"  writes     {Path.Combine(_runDir, Checkpointer.Folder)}/ every {s.CheckpointEvery} steps (keeps {s.KeepLast}), " +
                  "stats.jsonl, loss.png" + Outputs(s));
            Write(Steering(s));
        }
        catch (Exception e)
        {
            Write($"  (could not describe the run: {e.Message})");
        }
        finally
        {
            _done.TrySetResult();
        }
    }

    /// <summary>The run ended before a trainer was built (refused, already finished): nothing more to print.</summary>
    public void Abandon() => _done.TrySetResult();

    private string Outputs(RunSettings s)
    {
        var parts = new List<string>();
        foreach (var e in s.Evaluation.Evaluators)
        {
            var every = s.Evaluation.Every > 0 ? $"every {s.Evaluation.Every} steps" : "at the end";
            if (e.Type == "sample-grid")
                parts.Add($"samples/ {string.Join(" and ", e.SamplingSteps)}-step grids {every} (view-*.png to look at, grid-*.png raw)");
            else
                parts.Add($"metrics.jsonl + fd.png ({e.Type}, {string.Join("/", e.SamplingSteps)} steps, {e.Count} samples) {every}");
        }
        return parts.Count == 0 ? "" : "; " + string.Join("; ", parts);
    }

    private string Steering(RunSettings s)
    {
        if (!s.Config.GetBoolean("ect.control.enabled", true))
            return "  control    off (ect.control.enabled = false): stop it with Ctrl-C or SIGTERM";
        var ect = CommandName();
        var rd = _runDir.Contains(' ') ? $"\"{_runDir}\"" : _runDir;
        return $"  watch      {ect} ctl status --run-dir {rd}\n" +
               $"  steer      {ect} ctl pause|resume|checkpoint|eval|stage N|set KEY=VALUE|stop --run-dir {rd}   (Ctrl-C checkpoints and stops)";
    }

    /// <summary>How this program was started, so the printed commands can be pasted as they are: the apphost's path
    /// when it is not on PATH (as after `dotnet run`), else `ect`.</summary>
    private static string CommandName()
    {
        var path = Environment.ProcessPath;
        if (path is null || Path.GetFileNameWithoutExtension(path) != "ect") return "ect";
        var onPath = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .Any(d => d.Length > 0 && File.Exists(Path.Combine(d, "ect")) && Path.GetFullPath(Path.Combine(d, "ect")) == path);
        if (onPath) return "ect";
        var rel = Path.GetRelativePath(Environment.CurrentDirectory, path);
        return rel.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(rel) ? path : rel;
    }

    private static string Describe(object o) => o is IDescribed d ? d.Description : o.GetType().Name;

    private void Write(string line)
    {
        lock (_out) { _out.WriteLine(line); _out.Flush(); }
    }
}
