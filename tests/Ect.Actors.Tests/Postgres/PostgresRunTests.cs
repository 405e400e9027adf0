using Ect.Actors.Checkpoints;
using Ect.Actors.Configuration;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Engine;
using Ect.Actors.Run;
using Ect.Actors.Tests.RunTests;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.Postgres;

/// <summary>
/// Real runs (the `ect` program, fake engine, driven through the run coordinator) on one PostgreSQL database, the
/// server .ci/run starts (ECT_PG_CONNECTION) or one the fixture starts: each run has its own journal stream, so
/// runs at the same time, a SIGKILL and a resume all end with the bits the same runs have on SQLite, and a run
/// directory that lost its run is refused rather than replayed into.
/// </summary>
[Collection("Console")]
public sealed class PostgresRunTests(PostgresFixture pg, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    // KillResumeTests' run: slow enough steps, writes and evaluations that a random kill lands inside one of them.
    private const string Config = Ect.Actors.Tests.RunTests.KillResumeTests.Config;

    private static string PostgresConf => Path.Combine(RepoRoot.Find(), "hocon", "postgres.conf");
    private Dictionary<string, string> Env => new() { [Ect.Actors.Postgres.PostgresPersistence.EnvironmentVariable] = pg.ConnectionString };
    private JournalCatalog Journal => JournalCatalog.Postgres(pg.ConnectionString);

    /// <summary>The same run on SQLite, in-process, without the fake engine's delays: the bits to expect.</summary>
    private static async Task<RunFinished> SqliteReference(string config, int seed)
    {
        var s = RunSettings.From(EctConfiguration.Load(config,
            [$"run.seed={seed}", "control.enabled=off", "display.mode=off", "fake.step-ms=0", "fake.write-ms=0", "fake.eval-ms=0"]), checkData: false);
        var dir = DaemonHarness.NewRunDir();
        (await DaemonHarness.RunDaemonAsync(dir, s)).ExitCode.Should().Be(0);
        return DaemonHarness.Finished(dir);
    }

    private RunFinished FinishedOnPostgres(string runDir)
    {
        var id = RunIdentity.Read(runDir)!;
        return RunJournal.Events<RunFinished>(Journal.Events(id.PersistenceId)).Should().ContainSingle().Subject;
    }

    [Fact]
    public async Task Two_runs_at_once_on_one_database_one_killed_and_resumed_end_with_their_SQLite_digests()
    {
        var root = Directory.CreateTempSubdirectory("ect-pg-runs-").FullName;
        var config = Path.Combine(root, "tiny.conf");
        File.WriteAllText(config, Config);
        // The SQLite references run in-process meanwhile.
        var referenceA = SqliteReference(config, 1);
        var referenceB = SqliteReference(config, 2);

        var a = Path.Combine(root, "a");
        var b = Path.Combine(root, "b");
        string[] Args(string dir, int seed) => EctProcess.TrainArgs(dir, [config, PostgresConf], "--set", $"run.seed={seed}");
        // B runs start to end while A is started, killed with SIGKILL mid-training, and started again.
        var runB = EctProcess.RunToEnd(output, Args(b, 2), Env);
        var killed = await EctProcess.KillDuringTraining(output, Args(a, 1), new Random(16), Env, maxDelayMs: 1000,
            journal: () => RunJournal.Events<CheckpointCommitted>(Journal.Events(RunIdentity.PersistenceIdOf(a))).Select(c => c.Step));
        killed.Should().BeTrue("the kill must land while A trains");
        var (codeA, outA) = await EctProcess.RunToEnd(output, Args(a, 1), Env);
        var (codeB, outB) = await runB;
        codeA.Should().Be(0, outA);
        codeB.Should().Be(0, outB);

        var (expectedA, expectedB) = (await referenceA, await referenceB);
        expectedA.WeightsSha256.Should().NotBe(expectedB.WeightsSha256, "two different runs");
        var idA = RunIdentity.Read(a)!;
        var idB = RunIdentity.Read(b)!;
        outA.Should().Contain(idA.Id, "the run id is printed at start");
        idA.PersistenceId.Should().NotBe(idB.PersistenceId);
        var gotA = FinishedOnPostgres(a);
        var gotB = FinishedOnPostgres(b);
        (gotA.WeightsSha256, gotA.EmaSha256).Should().Be((expectedA.WeightsSha256, expectedA.EmaSha256), "A, killed and resumed, has A's SQLite bits");
        (gotB.WeightsSha256, gotB.EmaSha256).Should().Be((expectedB.WeightsSha256, expectedB.EmaSha256), "B has B's SQLite bits");
        var commitsA = RunJournal.Events<CheckpointCommitted>(Journal.Events(idA.PersistenceId)).Select(c => c.Step).ToList();
        commitsA.Should().OnlyHaveUniqueItems("every committed checkpoint of the killed run is journaled once");

        // `ect runs --journal postgresql` lists both with id, run directory, phase and step.
        var (code, listing, err) = CliHarness.Run("runs", "--journal", "postgresql", "--set", $"persistence.connection-string={pg.ConnectionString}");
        code.Should().Be(0, err);
        output.WriteLine(listing);
        foreach (var (id, dir) in new[] { (idA, a), (idB, b) })
        {
            var line = listing.Split('\n').Should().ContainSingle(l => l.Contains(id.Id)).Subject;
            line.Should().Contain(RunIdentity.FullPath(dir)).And.Contain(Phases.Finished).And.Contain("120");
        }
    }

    [Fact]
    public async Task A_deleted_run_directory_restarted_on_the_journal_that_holds_its_old_run_is_refused()
    {
        var root = Directory.CreateTempSubdirectory("ect-pg-deleted-").FullName;
        var dir = Path.Combine(root, "run");
        var s = DaemonHarness.Settings("persistence.provider=postgresql", $"persistence.connection-string={pg.ConnectionString}");
        (await DaemonHarness.RunDaemonAsync(dir, s)).ExitCode.Should().Be(0);
        var old = RunIdentity.Read(dir)!;
        var events = Journal.Events(old.PersistenceId).Count;
        events.Should().BeGreaterThan(5);
        // The case: with the run finished, a brand-new run directory on the same database starts its own run.
        var fresh = Path.Combine(root, "fresh");
        (await DaemonHarness.RunDaemonAsync(fresh, s)).ExitCode.Should().Be(0);
        FinishedOnPostgres(fresh).Step.Should().Be(60);

        Directory.Delete(dir, true);
        var (code, text) = await EctProcess.RunToEnd(output,
            EctProcess.TrainArgs(dir, [PostgresConf], "--set", "run.engine=fake", "--set", "control.enabled=off"), Env);
        code.Should().Be(2, text);
        text.Should().Contain("PostgreSQL journal").And.Contain(old.Id).And.Contain(RunIdentity.FullPath(dir)).And.Contain("finished at step 60")
            .And.Contain("--new-run");
        Journal.Events(old.PersistenceId).Should().HaveCount(events, "the old run's stream is untouched");
        File.Exists(Path.Combine(dir, RunIdentity.FileName)).Should().BeFalse();
        Directory.Exists(Path.Combine(dir, Checkpointer.Folder)).Should().BeFalse("nothing was trained");
    }
}
