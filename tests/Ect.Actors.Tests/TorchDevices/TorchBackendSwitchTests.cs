using System.Diagnostics;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.TorchDevices;

/// <summary>
/// The build switch of issue 18 point 3, checked by MSBuild's evaluation alone (the CUDA packages are not served here,
/// so nothing is restored): -p:TorchBackend=cuda references TorchSharp-cuda-linux and defines ECT_TORCH_CUDA in both
/// projects that use TorchSharp, the default references TorchSharp-cpu, and another value stops the build naming both.
/// </summary>
public class TorchBackendSwitchTests
{
    private static readonly string Root = RepoRoot.Find();

    private static (int Code, string Output) MsBuild(string project, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Root };
        foreach (var a in new[] { "msbuild", Path.Combine(Root, "src", project, project + ".csproj"), "-nologo" }.Concat(args)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit(120_000).Should().BeTrue("msbuild evaluation finishes");
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    [Theory]
    [InlineData("Ect.Compute")]
    [InlineData("Ect.Data")]
    public void Cuda_swaps_the_libtorch_package_and_the_default_stays_cpu(string project)
    {
        var cuda = MsBuild(project, "-getItem:PackageReference", "-getProperty:DefineConstants", "-p:TorchBackend=cuda");
        cuda.Code.Should().Be(0, cuda.Output);
        cuda.Output.Should().Contain("\"TorchSharp-cuda-linux\"").And.NotContain("\"TorchSharp-cpu\"").And.Contain("ECT_TORCH_CUDA");

        var plain = MsBuild(project, "-getItem:PackageReference", "-getProperty:DefineConstants");
        plain.Code.Should().Be(0, plain.Output);
        plain.Output.Should().Contain("\"TorchSharp-cpu\"").And.NotContain("TorchSharp-cuda-linux").And.NotContain("ECT_TORCH_CUDA");
    }

    [Fact]
    public void Another_backend_stops_the_build_naming_the_two_choices()
    {
        var bad = MsBuild("Ect.Compute", "-t:EctCheckTorchBackend", "-p:TorchBackend=rocm");
        bad.Code.Should().NotBe(0);
        bad.Output.Should().Contain("TorchBackend=rocm: must be cpu").And.Contain("cuda");
    }
}
