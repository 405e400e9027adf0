using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Ect.Actors.Sweeps;

/// <summary>
/// One `ect train` child of a sweep on RUN_ROOT/RUN_ID: started with the run's --config files and --set lines, its
/// output appended to RUN_DIR/sweep-train.log, its CPU time sampled while it lives, and RUN_DIR/sweep-run.json updated
/// when it ends. Used by the one-machine executor (<see cref="LocalSweepExecutor"/>) and by the cluster's run entities.
/// The child is told its parent's pid (<see cref="ParentPidVariable"/>) and kills itself when that process is gone, so
/// a SIGKILLed `ect sweep run` or `ect node` leaves no orphan training (and no run lock held by one).
/// </summary>
public sealed class TrainChild : IDisposable
{
    /// <summary>Set in the child's environment: the pid of the process that started it (see Program.Main).</summary>
    public const string ParentPidVariable = "ECT_PARENT_PID";

    // Every child of this process that has not ended: `ect node` waits for them after its ActorSystem stops (they
    // were asked to checkpoint; leaving first would make them kill themselves mid-write).
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<int, Process> Live = new();

    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly Task _copy;
    private readonly string _runDir;

    private TrainChild(Process process, StreamWriter log, string runDir)
    {
        _process = process;
        _log = log;
        _runDir = runDir;
        _copy = Task.WhenAll(Pump(process.StandardOutput, log), Pump(process.StandardError, log));
    }

    public int Pid => _process.Id;

    /// <summary>Starts `ect train --config C... --set S... --set ect.run.threads=T --set ect.display.mode=plain --run-dir DIR`.</summary>
    public static TrainChild Start((string File, IReadOnlyList<string> Prefix) ect, IEnumerable<string> configs, IEnumerable<string> sets,
        int threads, string runDir)
    {
        Directory.CreateDirectory(runDir);
        var psi = new ProcessStartInfo(ect.File) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in ect.Prefix) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("train");
        foreach (var c in configs) { psi.ArgumentList.Add("--config"); psi.ArgumentList.Add(c); }
        foreach (var s in sets.Append($"ect.run.threads={threads}").Append("ect.display.mode=plain"))
        { psi.ArgumentList.Add("--set"); psi.ArgumentList.Add(s); }
        psi.ArgumentList.Add("--run-dir"); psi.ArgumentList.Add(runDir);
        psi.Environment[ParentPidVariable] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var log = new StreamWriter(Path.Combine(runDir, "sweep-train.log"), append: true) { AutoFlush = true };
        try
        {
            var child = new TrainChild(Process.Start(psi)!, log, runDir);
            Live[child.Pid] = child._process;
            return child;
        }
        catch { log.Dispose(); throw; }
    }

    /// <summary>Waits for the child's end (sampling its CPU time every second), records it in sweep-run.json; returns (exit code, CPU seconds).</summary>
    public async Task<(int ExitCode, double CpuSeconds)> WaitAsync()
    {
        // CPU time is read from /proc while the child lives (an exited child's is gone): sampled every second,
        // without holding a thread while waiting.
        double cpu = 0;
        var exited = _process.WaitForExitAsync();
        while (!exited.IsCompleted)
        {
            try { cpu = _process.TotalProcessorTime.TotalSeconds; } catch (InvalidOperationException) { }
            await Task.WhenAny(exited, Task.Delay(1000)).ConfigureAwait(false);
        }
        await exited.ConfigureAwait(false);
        Live.TryRemove(_process.Id, out _);
        await _copy.ConfigureAwait(false);
        var record = SweepRunRecord.Read(_runDir) ?? new SweepRunRecord(Path.GetFileName(_runDir), 0, null, 0);
        record = record with { Invocations = record.Invocations + 1, LastExitCode = _process.ExitCode, CpuSeconds = record.CpuSeconds + cpu };
        record.Write(_runDir);
        return (_process.ExitCode, cpu);
    }

    /// <summary>Asks the child to end at its next step boundary (SIGTERM: it writes a checkpoint and exits).</summary>
    public void Terminate()
    {
        try { if (!_process.HasExited) kill(_process.Id, 15); } catch (InvalidOperationException) { }
    }

    /// <summary>Waits until every child this process started has ended, at most <paramref name="timeout"/>; returns how many still run.</summary>
    public static int WaitForAll(TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        foreach (var p in Live.Values)
        {
            var left = until - DateTime.UtcNow;
            try { if (left <= TimeSpan.Zero || !p.WaitForExit(left)) continue; } catch (InvalidOperationException) { }
        }
        return Live.Values.Count(p => { try { return !p.HasExited; } catch (InvalidOperationException) { return false; } });
    }

    public void Dispose()
    {
        _process.Dispose();
        _log.Dispose();
    }

    private static async Task Pump(StreamReader from, StreamWriter to)
    {
        string? line;
        while ((line = await from.ReadLineAsync()) is not null) lock (to) to.WriteLine(line);
    }

    [DllImport("libc", SetLastError = true)] private static extern int kill(int pid, int sig);

    /// <summary>
    /// In the child (Program.Main): when <see cref="ParentPidVariable"/> is set, end this process with SIGKILL as soon as
    /// that parent is gone, as an mpirun rank does (a crash-proof run is built to be killed at any instant).
    /// </summary>
    public static void WatchParentFromEnvironment()
    {
        if (Environment.GetEnvironmentVariable(ParentPidVariable) is not { Length: > 0 } text) return;
        // Not inherited further: a process this one starts has this one as its parent, not the sweep's.
        Environment.SetEnvironmentVariable(ParentPidVariable, null);
        if (int.TryParse(text, out var parent) && parent > 1)
            Ect.Mpi.ParentWatch.StartFor(parent, $"the process that started it (pid {parent}, {ParentPidVariable})", TimeSpan.FromMilliseconds(250));
    }
}
