using System.Text.Json;
using Ect.Actors.Configuration;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Sweeps;
using Ect.Actors.Tests.RunTests;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// Issue 19 (the one-machine part): `ect sweep run` trains every run of a spec as an `ect train` child, two at once,
/// each to its end; the results table names every run; a second start has nothing left to do; a run root whose runs
/// were made with another configuration is refused.
/// </summary>
public class LocalSweepTests(ITestOutputHelper output)
{
    private static string Spec(string dir, string extraSet = "") 
    {
        var path = Path.Combine(dir, "sweep.conf");
        File.WriteAllText(path, $$"""
            sweep {
              name = "fake-sweep"
              metric = "fd-resnet18-1step"
              set {
                ect.run.engine = fake
                ect.pretrain.steps = 10
                ect.tuning.steps = 10
                ect.checkpoint.every-steps = 5
                ect.evaluation.every-steps = 0
                ect.control.enabled = off
                ect.fake.step-ms = 5
                {{extraSet}}
              }
              grid { "ect.tuning.double-ticks" = [1, 2] }
            }
            """);
        return path;
    }

    private static (string, IReadOnlyList<string>) Ect => ("dotnet", [EctProcess.EctDll]);

    [Fact]
    public async Task A_sweep_runs_every_run_to_its_end_two_at_once_and_a_second_start_has_nothing_to_do()
    {
        var dir = Directory.CreateTempSubdirectory("ect-sweep-").FullName;
        var spec = SweepSpec.Load(Spec(dir));
        var root = Path.Combine(dir, "runs");
        var log = new StringWriter();
        var failed = await new LocalSweepExecutor(spec, root, 2, 1, log, Ect).RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(4));
        output.WriteLine(log.ToString());
        failed.Should().Be(0);
        foreach (var run in spec.Runs)
        {
            var finished = RunJournal.Events<RunFinished>(RunJournal.Read(Path.Combine(root, run.Id))).Should().ContainSingle().Subject;
            finished.Step.Should().Be(20);
            SweepRunRecord.Read(Path.Combine(root, run.Id))!.Should().Match<SweepRunRecord>(r => r.Invocations == 1 && r.LastExitCode == 0);
        }
        var rows = SweepResults.Read(spec, root);
        rows.Select(r => r.State).Should().AllBe("finished");
        var written = SweepResults.Write(spec, root, rows);
        using (var doc = JsonDocument.Parse(File.ReadAllText(written[0])))
            doc.RootElement.GetProperty("runs").GetArrayLength().Should().Be(2);

        var again = new StringWriter();
        (await new LocalSweepExecutor(spec, root, 2, 1, again, Ect).RunAsync(CancellationToken.None)).Should().Be(0);
        again.ToString().Should().Contain("2 finished, 0 to run");
        SweepRunRecord.Read(Path.Combine(root, spec.Runs[0].Id))!.Invocations.Should().Be(1, "a finished run is not started again");
    }

    [Fact]
    public void A_run_root_whose_runs_have_another_configuration_is_refused()
    {
        var dir = Directory.CreateTempSubdirectory("ect-sweep-").FullName;
        var root = Path.Combine(dir, "runs");
        new LocalSweepExecutor(SweepSpec.Load(Spec(dir)), root, 1, 1, TextWriter.Null, Ect).Prepare();
        // Same sweep name and overlays (so the same run ids), another base: the existing runs would not match.
        var changed = SweepSpec.Load(Spec(dir, "ect.fake.step-ms = 6"));
        var act = () => new LocalSweepExecutor(changed, root, 1, 1, TextWriter.Null, Ect).Prepare();
        act.Should().Throw<ConfigurationException>().Which.Message.Should().Contain("exists with another configuration").And.Contain(changed.Runs[0].Id);
    }
    [Theory]
    [InlineData("{\"Sweep\":\"fake-sweep\",\"Runs\":null}")]
    [InlineData("{\"Sweep\":\"fake-sweep\",\"Runs\":[null]}")]
    [InlineData("{\"Sweep\":\"fake-sweep\",\"Runs\":[{\"Id\":\"x\"}]}")]
    public void A_run_root_whose_sweep_json_is_json_of_another_shape_is_refused_by_name(string manifest)
    {
        // Valid JSON that deserializes with nulls used to end in a NullReferenceException (a crash of `ect sweep`).
        var dir = Directory.CreateTempSubdirectory("ect-sweep-").FullName;
        var root = Path.Combine(dir, "runs");
        Directory.CreateDirectory(root);
        File.WriteAllText(Path.Combine(root, LocalSweepExecutor.ManifestFile), manifest);
        var act = () => new LocalSweepExecutor(SweepSpec.Load(Spec(dir)), root, 1, 1, TextWriter.Null, Ect).Prepare();
        act.Should().Throw<ConfigurationException>().Which.Message.Should().Contain(Path.Combine(root, LocalSweepExecutor.ManifestFile))
            .And.Contain("not a sweep manifest");
    }
}
