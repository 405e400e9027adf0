using Ect.Actors.Daemon;
using Ect.Actors.Engine;
using FluentAssertions;
using Microsoft.Data.Sqlite;
using Xunit;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// A coordinator that cannot replay its journal must end `ect train` with an error naming the cause, not leave
/// it waiting forever for an outcome (the hang a recovery timeout under heavy load used to cause).
/// </summary>
public class RecoveryFailureTests
{
    [Fact]
    public async Task A_journal_that_cannot_be_replayed_ends_the_run_with_an_error_instead_of_a_hang()
    {
        var dir = NewRunDir();
        (await RunDaemonAsync(dir, Settings("run.max-steps=12"))).Step.Should().Be(12);

        // As if a newer ect had written the journal: every event carries a manifest this version does not know.
        using (var conn = new SqliteConnection($"Data Source={Path.Combine(dir, "journal.db")};Pooling=False"))
        {
            conn.Open();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "UPDATE journal SET manifest = 'ect.run.from-the-future.v99'; DELETE FROM snapshot;";
            cmd.ExecuteNonQuery().Should().BeGreaterThan(0);
        }

        var run = RunDaemon.RunAsync(Settings(), dir, Engines.Fake, CancellationToken.None, TextWriter.Null);
        var finished = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(60)));
        finished.Should().BeSameAs(run, "the daemon must give up when recovery fails, not wait for an outcome");
        var outcome = await run;
        outcome.ExitCode.Should().NotBe(0);
        outcome.Message.Should().Contain("journal").And.Contain("ect.run.from-the-future.v99");
        File.Exists(Path.Combine(dir, RunDaemon.LockFile)).Should().BeFalse("the lock is released on the way out");
    }
}
