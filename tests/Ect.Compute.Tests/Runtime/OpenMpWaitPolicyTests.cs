using System.Diagnostics;
using Ect.Compute.Runtime;
using FluentAssertions;
using Xunit;

namespace Ect.Compute.Tests.Runtime;

/// <summary>
/// libtorch's OpenMP runtime (libgomp) reads OMP_WAIT_POLICY once, as libtorch loads; <see cref="OpenMpWaitPolicy.Apply"/>
/// at the start of Main must set it before that. libgomp prints the policy it took when OMP_DISPLAY_ENV=TRUE, so the
/// tests run a real entry point (the resume probe, whose Main calls Apply first, as ect's and the bench's do) that
/// trains one step and read what libgomp says.
/// </summary>
public class OpenMpWaitPolicyTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-omp-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void A_process_that_applies_the_policy_first_has_libgomp_wait_passively()
    {
        var stderr = RunProbeWithOpenMpDisplay(new Dictionary<string, string>());
        stderr.Should().Contain("OPENMP DISPLAY ENVIRONMENT BEGIN", "libtorch loads libgomp, which prints its settings");
        stderr.Should().Contain("OMP_WAIT_POLICY = 'PASSIVE'");
    }

    [Fact]
    public void A_policy_the_user_set_is_kept()
    {
        var stderr = RunProbeWithOpenMpDisplay(new Dictionary<string, string> { ["OMP_WAIT_POLICY"] = "ACTIVE" });
        stderr.Should().Contain("OMP_WAIT_POLICY = 'ACTIVE'");
    }

    [Fact]
    public void Apply_sets_the_native_environment_and_keeps_a_set_value()
    {
        // In this test process libgomp may already be loaded (other tests ran torch), so only the environment is checked.
        OpenMpWaitPolicy.Apply();
        OpenMpWaitPolicy.NativeValue("OMP_WAIT_POLICY").Should().NotBeNull();
        if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is { } userValue)
            OpenMpWaitPolicy.NativeValue("OMP_WAIT_POLICY").Should().Be(userValue);
        else
            OpenMpWaitPolicy.NativeValue("OMP_WAIT_POLICY").Should().Be(OpenMpWaitPolicy.WaitPolicy);
    }

    private string RunProbeWithOpenMpDisplay(IReadOnlyDictionary<string, string> environment)
    {
        var here = AppContext.BaseDirectory;
        var sep = Path.DirectorySeparatorChar;
        var probe = Path.Combine(here.Replace($"{sep}Ect.Compute.Tests{sep}", $"{sep}Ect.Compute.ResumeProbe{sep}"), "Ect.Compute.ResumeProbe.dll");
        File.Exists(probe).Should().BeTrue($"the resume probe should be built at '{probe}' (the test project builds it)");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { probe, "train", "1", Path.Combine(_dir, "state.safetensors") }) psi.ArgumentList.Add(a);
        psi.Environment.Remove("OMP_WAIT_POLICY");
        psi.Environment["OMP_DISPLAY_ENV"] = "TRUE";
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit(120_000).Should().BeTrue("the probe should finish within 2 minutes");
        p.ExitCode.Should().Be(0, $"the probe failed: {stderr.Result}");
        stdout.Result.Should().Contain("step=1 ");
        return stderr.Result;
    }
}
