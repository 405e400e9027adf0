using System.Collections.Concurrent;
using System.Diagnostics;
using Ect.Actors.Sweeps;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// An `ect` told its starter's pid (ECT_PARENT_PID) ends itself when that process dies, whatever the command: every
/// `ect` a test starts (<see cref="EctProcess.Start(IEnumerable{string}, IReadOnlyDictionary{string, string}?)"/>) is
/// told the test host's pid, so a crashed or killed test host leaves no `ect node` or `ect train` loading the machine.
/// Here `sh` plays the test host: it starts a long `ect train` in the background and is SIGKILLed (a sweep's trainer
/// watching its `ect node` is ClusterSweepTests' case).
/// </summary>
public class ParentWatchTests(ITestOutputHelper output)
{
    [Fact]
    public async Task An_ect_whose_starter_is_killed_ends_itself_instead_of_running_on()
    {
        var work = Directory.CreateTempSubdirectory("ect-parent-watch-").FullName;
        var config = Path.Combine(work, "long.conf");
        // The fake engine's run, long enough (100,000 steps of 20 ms) that only the watch can end it within the test.
        File.WriteAllText(config, KillResumeTests.Config.Replace("pretrain.steps = 60", "pretrain.steps = 100000").Replace("step-ms = 12", "step-ms = 20"));
        var psi = new ProcessStartInfo("sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        // sh is ect's parent ($! is ect: dash forks and execs dotnet); ECT_PARENT_PID names sh, as EctProcess names the host.
        psi.ArgumentList.Add($"{TrainChild.ParentPidVariable}=$$ dotnet \"$0\" train --config \"$1\" --run-dir \"$2\" & echo \"ect pid $!\"; wait");
        psi.ArgumentList.Add(EctProcess.EctDll);
        psi.ArgumentList.Add(config);
        psi.ArgumentList.Add(Path.Combine(work, "run"));
        psi.Environment.Remove(TrainChild.ParentPidVariable);
        var lines = new ConcurrentQueue<string>();
        using var sh = Process.Start(psi)!;
        sh.OutputDataReceived += (_, e) => { if (e.Data is { } l) lines.Enqueue(l); };
        sh.ErrorDataReceived += (_, e) => { if (e.Data is { } l) lines.Enqueue("! " + l); };
        sh.BeginOutputReadLine();
        sh.BeginErrorReadLine();
        Process? ect = null;
        try
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < TimeSpan.FromSeconds(60) && !lines.Any(l => l.Contains(" step ")) && !sh.HasExited) await Task.Delay(100);
            var pidLine = lines.FirstOrDefault(l => l.StartsWith("ect pid ", StringComparison.Ordinal));
            pidLine.Should().NotBeNull(string.Join("\n", lines));
            ect = Process.GetProcessById(int.Parse(pidLine!["ect pid ".Length..]));
            lines.Should().Contain(l => l.Contains(" step "), "the run trains before its starter is killed:\n" + string.Join("\n", lines.TakeLast(20)));
            ect.HasExited.Should().BeFalse("the run is alive when its starter is killed");

            sh.Kill(); // SIGKILL: sh cannot pass anything on to its background job
            sh.WaitForExit(10_000).Should().BeTrue();
            sh.ExitCode.Should().Be(137, "sh died of the SIGKILL");
            var ended = ect.WaitForExitAsync();
            (await Task.WhenAny(ended, Task.Delay(10_000))).Should().BeSameAs(ended,
                "an ect whose starter is gone kills itself within a second, not trains on as an orphan");
            output.WriteLine(string.Join("\n", lines.TakeLast(5)));
            await Task.Delay(500); // the last lines through the pipe
            lines.Should().Contain(l => l.Contains($"the process that started it (pid {sh.Id}, {TrainChild.ParentPidVariable}) is gone"));
        }
        finally
        {
            if (ect is { HasExited: false }) ect.Kill();
            if (!sh.HasExited) sh.Kill();
        }
    }
}
