using Akka.Actor;
using Akka.Configuration;
using Ect.Actors.Postgres;
using Ect.Actors.Tests.Persistence;
using FluentAssertions;
using Npgsql;
using Xunit;

namespace Ect.Actors.Tests.Postgres;

/// <summary>
/// hocon/postgres.conf against a real PostgreSQL: events persisted by one ActorSystem are recovered by the
/// next one exactly in order, from events alone and from a snapshot plus later events.
/// </summary>
public sealed class PostgresPersistenceTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static string ConfFile => Path.Combine(RepoRoot.Find(), "hocon", "postgres.conf");

    /// <summary>
    /// The shipped hocon/postgres.conf through the daemon's loader (default.conf &lt; --config &lt; --set) with the
    /// fixture's server, and the Akka.Persistence.Sql section the daemon derives from it.
    /// </summary>
    private Config LoadConfig() =>
        PostgresPersistence.AkkaConfig(PostgresPersistence.Load(ConfFile,
                [$"{PostgresPersistence.ConnectionStringPath}={pg.ConnectionString}"], environmentValue: ""))
            .WithFallback(ConfigurationFactory.ParseString("akka.loglevel = WARNING\n" + CounterActor.SerializationHocon));

    [Fact]
    public void The_environment_variable_wins_over_the_config_key_and_none_is_an_error()
    {
        var withKey = PostgresPersistence.Load(ConfFile, [$"{PostgresPersistence.ConnectionStringPath}=Host=a"], environmentValue: "");
        withKey.GetString(PostgresPersistence.ConnectionStringPath).Should().Be("Host=a");
        PostgresPersistence.Apply(withKey, environmentValue: "Host=from-env")
            .GetString(PostgresPersistence.ConnectionStringPath).Should().Be("Host=from-env");
        var act = () => PostgresPersistence.Load(ConfFile, environmentValue: "");
        act.Should().Throw<InvalidOperationException>().WithMessage("*ECT_PG_CONNECTION*");
    }

    [Fact]
    public void Config_file_selects_the_sql_plugins_with_PostgreSQL_15_and_the_connection_string()
    {
        var c = LoadConfig();
        c.GetString("akka.persistence.journal.plugin").Should().Be("akka.persistence.journal.sql");
        c.GetString("akka.persistence.journal.sql.provider-name").Should().Be("PostgreSQL.15");
        c.GetString("akka.persistence.journal.sql.connection-string").Should().Be(pg.ConnectionString);
        c.GetString("akka.persistence.snapshot-store.plugin").Should().Be("akka.persistence.snapshot-store.sql");
        c.GetString("akka.persistence.snapshot-store.sql.provider-name").Should().Be("PostgreSQL.15");
        c.GetString("akka.persistence.snapshot-store.sql.connection-string").Should().Be(pg.ConnectionString);
    }

    private async Task<T> WithSystem<T>(Func<ActorSystem, Task<T>> body)
    {
        var system = ActorSystem.Create("pg-test", LoadConfig());
        try { return await body(system); }
        finally { await system.Terminate(); }
    }

    [Fact]
    public async Task Events_survive_a_restart_and_are_recovered_exactly_in_order()
    {
        var pid = "counter-" + Guid.NewGuid().ToString("N");
        var labels = Enumerable.Range(1, 40).Select(i => $"e{i:D3}-{(i * 7919) % 101}").ToArray();

        await WithSystem(async sys =>
        {
            var a = sys.ActorOf(CounterActor.Props(pid));
            foreach (var l in labels) await a.Ask<long>(new Add(l), Timeout);
            return 0;
        });

        var state = await WithSystem(sys => sys.ActorOf(CounterActor.Props(pid)).Ask<CounterState>(new GetState(), Timeout));
        state.Labels.Should().Equal(labels);
        state.EventsReplayed.Should().Be(labels.Length);
        state.SnapshotSequenceNr.Should().BeNull();
        state.LastSequenceNr.Should().Be(labels.Length);

        // Stored with the protobuf serializer and its short manifest, not JSON with CLR type names.
        await using var conn = new NpgsqlConnection(pg.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(
            "select count(*), min(identifier), max(identifier), min(manifest), max(manifest) from journal where persistence_id = @p", conn);
        cmd.Parameters.AddWithValue("p", pid);
        await using var r = await cmd.ExecuteReaderAsync();
        (await r.ReadAsync()).Should().BeTrue();
        r.GetInt64(0).Should().Be(labels.Length);
        (r.GetInt32(1), r.GetInt32(2)).Should().Be((CounterSerializer.Id, CounterSerializer.Id));
        (r.GetString(3), r.GetString(4)).Should().Be((CounterSerializer.EventManifest, CounterSerializer.EventManifest));
    }

    [Fact]
    public async Task Snapshot_plus_later_events_recover_the_same_state()
    {
        var pid = "counter-" + Guid.NewGuid().ToString("N");
        var before = Enumerable.Range(1, 12).Select(i => $"before-{i}").ToArray();
        var after = Enumerable.Range(1, 5).Select(i => $"after-{i}").ToArray();

        var snapSeq = await WithSystem(async sys =>
        {
            var a = sys.ActorOf(CounterActor.Props(pid));
            foreach (var l in before) await a.Ask<long>(new Add(l), Timeout);
            var seq = await a.Ask<long>(new TakeSnapshot(), Timeout);
            foreach (var l in after) await a.Ask<long>(new Add(l), Timeout);
            return seq;
        });
        snapSeq.Should().Be(before.Length);

        var state = await WithSystem(sys => sys.ActorOf(CounterActor.Props(pid)).Ask<CounterState>(new GetState(), Timeout));
        state.SnapshotSequenceNr.Should().Be(before.Length, "recovery starts from the snapshot");
        state.EventsReplayed.Should().Be(after.Length, "only the events after the snapshot are replayed");
        state.Labels.Should().Equal(before.Concat(after));
        state.LastSequenceNr.Should().Be(before.Length + after.Length);
    }
}
