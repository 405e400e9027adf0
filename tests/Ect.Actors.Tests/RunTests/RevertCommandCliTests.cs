using System.Diagnostics;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

/// <summary>`ect train --revert-command ID` as a user types it (issue 12, point 4).</summary>
public class RevertCommandCliTests
{
    private static (int Code, string Out, string Err) Ect(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "ect.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        p.WaitForExit(120_000).Should().BeTrue();
        return (p.ExitCode, o.Result, e.Result);
    }

    private static readonly string[] Fake =
        ["--set", "run.engine=fake", "--set", "display.mode=off", "--set", "control.enabled=off", "--set", "pretrain.steps=10"];

    [Fact]
    public void An_id_the_journal_does_not_hold_is_refused_with_exit_2_and_the_run_is_left_as_it_was()
    {
        var dir = Path.Combine(Directory.CreateTempSubdirectory().FullName, "run");
        var (code, _, err) = Ect(["train", "--run-dir", dir, "--steps", "5", .. Fake]);
        code.Should().Be(0, err);

        (code, _, err) = Ect(["train", "--run-dir", dir, "--revert-command", "nope", .. Fake]);
        code.Should().Be(2);
        err.Should().Contain("--revert-command nope: no live change of the run").And.Contain("The run has no live changes");
        RunJournal.Events<ConfigChanged>(RunJournal.Read(dir))
            .Should().NotContain(c => c.IdempotencyKey.StartsWith("revert:"));
    }
}
