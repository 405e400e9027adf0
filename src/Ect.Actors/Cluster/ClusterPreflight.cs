using Npgsql;

namespace Ect.Actors.Cluster;

/// <summary>Checks, before a node joins, that the cluster's PostgreSQL journal answers (a node without it could only fail later, quietly).</summary>
public static class ClusterPreflight
{
    /// <summary>Null when a connection opens within a few seconds; else a refusal naming the host, the port and the fix.</summary>
    public static string? CheckPostgres(string connection)
    {
        NpgsqlConnectionStringBuilder b;
        try { b = new NpgsqlConnectionStringBuilder(connection); }
        catch (ArgumentException e) { return $"--journal: not a PostgreSQL connection string ({e.Message}): e.g. \"Host=127.0.0.1;Port=5432;Username=postgres;Database=postgres\"."; }
        var where = $"{b.Host}:{b.Port}";
        try
        {
            b.Timeout = Math.Min(b.Timeout, 5);
            using var c = new NpgsqlConnection(b.ConnectionString);
            c.Open();
            using var cmd = new NpgsqlCommand("select 1", c);
            cmd.ExecuteScalar();
            return null;
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or TimeoutException or System.Net.Sockets.SocketException)
        {
            return $"cannot reach the cluster's PostgreSQL journal at {where} (database \"{b.Database}\", user \"{b.Username}\"): {e.GetBaseException().Message}. " +
                   "Start it (scripts/postgres.sh start DIR PORT) or fix --journal / ECT_PG_CONNECTION; nothing was started.";
        }
    }
}
