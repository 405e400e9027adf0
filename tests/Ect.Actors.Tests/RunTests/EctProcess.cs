using System.Diagnostics;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using FluentAssertions;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// The real `ect` program as a separate process (ect.dll next to the tests): started, run to its end, or killed
/// with SIGKILL while it trains. Shared by the kill/resume tests on SQLite (<see cref="KillResumeTests"/>) and on
/// PostgreSQL (Postgres.PostgresRunTests).
/// </summary>
internal static class EctProcess
{
    public static string EctDll
    {
        get
        {
            var dll = Path.Combine(AppContext.BaseDirectory, "ect.dll");
            File.Exists(dll).Should().BeTrue($"the ect program is built next to the tests ({dll})");
            return dll;
        }
    }

    /// <summary>`ect ARGS...` with <paramref name="environment"/> added to this process's environment.</summary>
    public static Process Start(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        // Through `env --default-signal=INT` (GNU coreutils, exec's dotnet in place: same PID): a test run started in the
        // background of a non-interactive shell (CI wrappers, nohup) inherits SIGINT as ignored, exec keeps it ignored,
        // and .NET then leaves it ignored (the Unix convention for background jobs), so a Ctrl-C test would see nothing.
        var psi = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // TERM too: the SIGTERM tests (CheckpointFailureTests) need it delivered the same way.
        foreach (var a in new[] { "--default-signal=INT,TERM", "dotnet", EctDll }.Concat(args)) psi.ArgumentList.Add(a);
        // The test host (this process) is the started process's parent (env execs dotnet in place); told so, `ect` ends itself when the host
        // is gone (TrainChild.WatchParentFromEnvironment), so a crashed or killed test run leaves no `ect node` or
        // `ect train` behind to load the machine (session 18: two nodes ran an hour after a test-host crash).
        psi.Environment[Ect.Actors.Sweeps.TrainChild.ParentPidVariable] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }

    /// <summary>`ect ARGS...` (a crash shows as its exit code: 134 SIGABRT, 139 SIGSEGV).</summary>
    public static Process Start(params string[] args) => Start((IEnumerable<string>)args);

    /// <summary>Runs `ect ARGS` to its end (at most <paramref name="limit"/>); returns exit code, output and the time it took.</summary>
    public static async Task<(int Code, string Out, string Err, TimeSpan Took)> RunAsync(TimeSpan limit, params string[] args)
    {
        var clock = Stopwatch.StartNew();
        using var p = Start(args);
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        try { await p.WaitForExitAsync().WaitAsync(limit); }
        catch (TimeoutException)
        {
            p.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException($"`ect {string.Join(' ', args)}` still ran after {limit.TotalSeconds} s:\n{await o}\n{await e}");
        }
        return (p.ExitCode, await o, await e, clock.Elapsed);
    }

    /// <summary>`ect train --config FILE... --run-dir DIR EXTRA...`.</summary>
    public static string[] TrainArgs(string runDir, IEnumerable<string> configFiles, params string[] extra) =>
        ["train", .. configFiles.SelectMany(c => new[] { "--config", c }), "--run-dir", runDir, .. extra];

    public static async Task<(int Code, string Out)> RunToEnd(ITestOutputHelper output, IEnumerable<string> args,
        IReadOnlyDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
        using var p = Start(args, environment);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(timeout ?? TimeSpan.FromSeconds(90));
        var text = await stdout + await stderr;
        output.WriteLine(text.Length > 2000 ? text[^2000..] : text);
        return (p.ExitCode, text);
    }

    /// <summary>
    /// Starts the run, waits until it trains (a progress line), then a random time, then SIGKILL. False when the
    /// run ended before the kill (or exited by itself as the kill was sent). <paramref name="journal"/> lists the committed checkpoint steps for the log.
    /// </summary>
    public static async Task<bool> KillDuringTraining(ITestOutputHelper output, IEnumerable<string> args, Random rng,
        IReadOnlyDictionary<string, string>? environment = null, Func<IEnumerable<long>>? journal = null, int maxDelayMs = 1500)
    {
        using var p = Start(args, environment);
        var firstLine = new TaskCompletionSource();
        p.OutputDataReceived += (_, e) => { if (e.Data?.Contains(" step ") == true) firstLine.TrySetResult(); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        await Task.WhenAny(firstLine.Task, p.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(60)));
        if (p.HasExited) { output.WriteLine($"run ended (exit {p.ExitCode}) before the kill"); return false; }
        var delay = rng.Next(0, maxDelayMs);
        await Task.Delay(delay);
        if (p.HasExited) { output.WriteLine($"run ended (exit {p.ExitCode}) before the kill"); return false; }
        p.Kill(); // SIGKILL
        await p.WaitForExitAsync();
        output.WriteLine($"killed after {delay} ms of training (exit {p.ExitCode})" + (journal == null ? "" : "; checkpoints journaled: " + string.Join(",", journal())));
        // Landed only when the process died of the SIGKILL (128 + 9), not of its own end in the same instant.
        return p.ExitCode == 128 + 9;
    }

    /// <summary>The committed checkpoint steps in a run directory's SQLite journal.</summary>
    public static Func<IEnumerable<long>> SqliteCheckpoints(string runDir) =>
        () => RunJournal.Events<CheckpointCommitted>(RunJournal.Read(runDir)).Select(c => c.Step);
}
