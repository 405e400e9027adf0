using System.Diagnostics;
using FluentAssertions;
using Xunit;

namespace Ect.Compute.Tests.Training;

/// <summary>
/// Exact continuation across processes: process A trains 3 steps and saves; process B loads and trains 3 more;
/// process C trains 6 steps straight. B and C must end with bit-identical weights and EMA (SHA-256).
/// </summary>
public class TrainStateResumeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-resume-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static string ProbeDll()
    {
        // The probe is built next to this assembly's folder layout: tests/Ect.Compute.ResumeProbe/bin/<cfg>/<tfm>/<rid>/.
        var here = AppContext.BaseDirectory;
        var probe = Path.Combine(here.Replace($"{Path.DirectorySeparatorChar}Ect.Compute.Tests{Path.DirectorySeparatorChar}",
            $"{Path.DirectorySeparatorChar}Ect.Compute.ResumeProbe{Path.DirectorySeparatorChar}"), "Ect.Compute.ResumeProbe.dll");
        File.Exists(probe).Should().BeTrue($"the resume probe should be built at '{probe}' (the test project builds it)");
        return probe;
    }

    private static string RunProbe(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(ProbeDll());
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit(120_000).Should().BeTrue("the probe should finish within 2 minutes");
        p.ExitCode.Should().Be(0, $"probe {string.Join(" ", args)} failed: {stderr.Result}");
        return stdout.Result.Trim().Split('\n')[^1];
    }

    [Fact]
    public void Resumed_run_in_a_new_process_matches_an_uninterrupted_run()
    {
        var state = Path.Combine(_dir, "a.safetensors");
        var a = RunProbe("train", "3", state);
        a.Should().StartWith("step=3 ");
        var b = RunProbe("resume", state, "3");
        var c = RunProbe("train", "6", Path.Combine(_dir, "c.safetensors"));
        c.Should().StartWith("step=6 ");
        b.Should().Be(c);
        a.Should().NotBe(c);
    }
}
