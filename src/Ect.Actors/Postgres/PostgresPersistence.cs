using Akka.Configuration;

namespace Ect.Actors.Postgres;

/// <summary>
/// Loads hocon/postgres.conf (Akka.Persistence.Sql journal + snapshot store on PostgreSQL) and settles its
/// connection string: the environment variable ECT_PG_CONNECTION when set, else
/// ect.persistence.connection-string.
/// </summary>
public static class PostgresPersistence
{
    public const string EnvironmentVariable = "ECT_PG_CONNECTION";
    // The daemon's key (hocon/default.conf), not a separate ect.persistence.postgres section: `ect train` refuses
    // keys that default.conf does not define, and hocon/postgres.conf must be usable as `ect train --config`.
    public const string ConnectionStringPath = "ect.persistence.connection-string";

    /// <summary>Parses a postgres.conf file (with <paramref name="overrides"/> on top) and applies <see cref="Apply"/>.</summary>
    public static Config Load(string confPath, Config? overrides = null)
    {
        if (!File.Exists(confPath))
            throw new FileNotFoundException($"PostgreSQL persistence config '{confPath}' does not exist (it ships as hocon/postgres.conf).", confPath);
        var file = ConfigurationFactory.ParseString(File.ReadAllText(confPath));
        return Apply(overrides is null ? file : overrides.WithFallback(file));
    }

    /// <summary>
    /// Puts the effective connection string into the journal and snapshot-store sections of
    /// <paramref name="config"/>. Throws when neither the variable nor the key gives one.
    /// </summary>
    public static Config Apply(Config config, string? environmentValue = null)
    {
        var env = environmentValue ?? Environment.GetEnvironmentVariable(EnvironmentVariable);
        var cs = env is { Length: > 0 } ? env : config.GetString(ConnectionStringPath, "");
        if (string.IsNullOrWhiteSpace(cs))
            throw new InvalidOperationException(
                $"No PostgreSQL connection string: set {ConnectionStringPath} in the config or the environment variable {EnvironmentVariable}, " +
                "e.g. \"Host=127.0.0.1;Port=5432;Username=postgres;Database=postgres\" (scripts/postgres.sh start DIR PORT prints one).");
        var q = "\"" + cs.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
        return ConfigurationFactory.ParseString($"""
            {ConnectionStringPath} = {q}
            akka.persistence.journal.sql.connection-string = {q}
            akka.persistence.snapshot-store.sql.connection-string = {q}
            """).WithFallback(config);
    }
}
