using Akka.Configuration;
using Ect.Actors.Configuration;
using Ect.Actors.Persistence;

namespace Ect.Actors.Postgres;

/// <summary>
/// PostgreSQL as the run's journal and snapshot store: hocon/postgres.conf (ect.persistence.provider = postgresql)
/// loaded through the daemon's configuration layers, the ECT_PG_CONNECTION override, and the Akka.Persistence.Sql
/// section the daemon derives from it.
/// </summary>
public static class PostgresPersistence
{
    public const string EnvironmentVariable = "ECT_PG_CONNECTION";

    // The daemon's key (hocon/default.conf), not a separate ect.persistence.postgres section: `ect train` refuses
    // keys that default.conf does not define, and hocon/postgres.conf must be usable as `ect train --config`.
    public const string ConnectionStringPath = "ect.persistence.connection-string";

    /// <summary>
    /// default.conf &lt; <paramref name="confPath"/> &lt; <paramref name="sets"/> (KEY=VALUE, as `ect train --set`),
    /// then <see cref="Apply"/>. Throws when the result is not a PostgreSQL configuration with a connection string.
    /// </summary>
    public static Config Load(string confPath, IEnumerable<string>? sets = null, string? environmentValue = null) =>
        Apply(EctConfiguration.Load(confPath, sets ?? []), environmentValue);

    /// <summary>
    /// The effective connection string into ect.persistence.connection-string: the environment variable
    /// ECT_PG_CONNECTION when set (<paramref name="environmentValue"/> replaces it in tests), else the key.
    /// Throws when neither gives one or the provider is not postgresql.
    /// </summary>
    public static Config Apply(Config ect, string? environmentValue = null)
    {
        var provider = ect.GetString("ect.persistence.provider", "");
        if (provider != "postgresql")
            throw new InvalidOperationException($"ect.persistence.provider is \"{provider}\", not \"postgresql\": layer hocon/postgres.conf (--config).");
        var env = environmentValue ?? Environment.GetEnvironmentVariable(EnvironmentVariable);
        var cs = env is { Length: > 0 } ? env : ect.GetString(ConnectionStringPath, "");
        if (string.IsNullOrWhiteSpace(cs))
            throw new InvalidOperationException(
                $"No PostgreSQL connection string: set {ConnectionStringPath} or the environment variable {EnvironmentVariable}, " +
                "e.g. \"Host=127.0.0.1;Port=5432;Username=postgres;Database=postgres\" (scripts/postgres.sh start DIR PORT prints one).");
        return ConfigurationFactory.ParseString($"{ConnectionStringPath} = {PersistenceHocon.Quote(cs)}").WithFallback(ect);
    }

    /// <summary>The Akka.Persistence.Sql journal + snapshot store section, as the daemon builds it.</summary>
    public static Config AkkaConfig(Config ect) => PersistenceHocon.For(ect, Path.GetTempPath());
}
