using System.Diagnostics;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

/// <summary>The `ect` program's train and config verbs, as a user runs them.</summary>
public class CliTests
{
    private static (int Code, string Out, string Err) Ect(params string[] args) => Ect(60, args);

    private static (int Code, string Out, string Err) Ect(int timeoutSeconds, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "ect.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        p.WaitForExit(timeoutSeconds * 1000).Should().BeTrue();
        return (p.ExitCode, o.Result, e.Result);
    }

    [Fact]
    public void Train_refuses_wrong_configuration_before_any_work_naming_each_key()
    {
        var dir = Path.Combine(Directory.CreateTempSubdirectory().FullName, "run");
        var (code, _, err) = Ect("train", "--run-dir", dir, "--set", "data.batch-size=-2", "--set", "network.type=vit",
            "--set", "data.path=/no/such/data");
        code.Should().Be(2);
        err.Should().Contain("ect.data.batch-size").And.Contain("ect.network.type");
        Directory.Exists(dir).Should().BeFalse("nothing starts with a refused configuration");
        var (code2, _, err2) = Ect("train", "--run-dir", dir, "--set", "data.path=/no/such/data");
        code2.Should().Be(2);
        err2.Should().Contain("ect.data.path").And.Contain("/no/such/data");
    }

    [Fact]
    public void A_short_one_thread_training_run_prints_no_NNPACK_line()
    {
        // One thread and batch 8: ECT's no-grad target pass runs its 1x1 convolutions outside oneDNN, where libtorch
        // asked for NNPACK and, on this machine's CPU, printed "Could not initialize NNPACK! Reason: Unsupported
        // hardware." for each (2,988 lines in a 120-step run of this size before the fix).
        const string data = "/usr/share/datasets/fashion-mnist";
        Directory.Exists(data).Should().BeTrue($"Fashion-MNIST is installed at {data} (apt-get install dataset-fashion-mnist)");
        var dir = Path.Combine(Directory.CreateTempSubdirectory().FullName, "run");
        var (code, output, err) = Ect(240, "train", "--run-dir", dir, "--steps", "3", "--set", "network.init=\"\"",
            "--set", "network.model-channels=8", "--set", "network.channel-mult=[1,2]", "--set", "data.batch-size=8",
            "--set", "data.max-images=64", "--set", "run.threads=1", "--set", "evaluation.evaluators=[]", "--set", "display.mode=plain");
        code.Should().Be(0, err);
        File.ReadLines(Path.Combine(dir, "stats.jsonl")).Should().HaveCount(3, "three steps ran");
        err.Should().NotContain("NNPACK");
        output.Should().NotContain("NNPACK");
    }

    [Fact]
    public void Config_show_prints_the_resolved_documented_configuration()
    {
        var (code, output, _) = Ect("config", "show", "--set", "tuning.q=4");
        code.Should().Be(0);
        output.Should().Contain("q = 4").And.Contain("# q > 1").And.Contain("engine = \"torch\"").And.Contain("token-file = \"control.token\"");
    }
}
