using System.Security.Cryptography;
using System.Text;
using Akka.Actor;
using Npgsql;

namespace Ect.Actors.Cluster;

/// <summary>
/// Decides whether a starting node founds the sweep cluster or joins the one that is alive, with a PostgreSQL advisory
/// lock on the shared journal database, keyed by the cluster's token (so two clusters on one database do not meet):
/// every member holds the lock shared for as long as it lives (its session ends with its process, a SIGKILL included);
/// a starting node that can take it exclusively knows no member is alive and founds the cluster (joins itself); any
/// other node joins the seed nodes other than itself and retries until one lets it in (Akka's JoinSeedNodeProcess).
/// <para>
/// Why not Akka's own rule (the first seed node joins itself when no other seed answers within seed-node-timeout): a
/// first seed that restarts on its old address while the others still run depends on an answer arriving in time, and
/// under load one did not (ClusterSweepTests, 2026-12-02: a one-node cluster beside the real one, whose director's
/// writes the journal refused); and the timeout had to be 30 s, which every fresh start then waited. Membership, failure
/// detection and downing stay Akka's; the lock only answers "is a member alive?" at start-up, from the database every
/// node needs anyway. A cluster whose members all lost their journal connection looks dead to a starting node: it then
/// founds a second cluster, but such members cannot persist anything either, and each takes its lock again when its
/// connection comes back (<see cref="HoldAsync"/>).
/// </para>
/// </summary>
public sealed class ClusterFounding : IAsyncDisposable
{
    private readonly string _connection;
    private readonly long _key;
    private readonly TextWriter _log;
    private readonly CancellationTokenSource _stop = new();
    private NpgsqlConnection? _db;
    private Task? _loop;

    private ClusterFounding(string connection, long key, TextWriter log) { _connection = connection; _key = key; _log = log; }

    /// <summary>The advisory lock key of the cluster with this token: the first 8 bytes of SHA-256("ect-cluster:" + token).</summary>
    public static long KeyOf(string token) => BitConverter.ToInt64(SHA256.HashData(Encoding.UTF8.GetBytes("ect-cluster:" + token)), 0);

    /// <summary>Opens the lock's connection; throws NpgsqlException when the journal's database cannot be reached.</summary>
    public static ClusterFounding Open(string connection, string token, TextWriter log)
    {
        var f = new ClusterFounding(connection, KeyOf(token), log);
        f.Connect();
        return f;
    }

    /// <summary>Whether this node founded the cluster (joined itself).</summary>
    public bool Founder { get; private set; }

    /// <summary>True when no member holds the lock (this session then holds it exclusively: found the cluster).</summary>
    public bool TryFound() => Scalar("select pg_try_advisory_lock(@k)");

    /// <summary>
    /// Starts the node's part: found or join now, keep trying to found while joining (the cluster may have died
    /// meanwhile), and once this node is up hold the lock shared until the process ends.
    /// </summary>
    public void Start(Akka.Cluster.Cluster cluster, IReadOnlyList<Address> otherSeeds)
    {
        var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.RegisterOnMemberUp(() => up.TrySetResult());
        _loop = Task.Run(async () =>
        {
            bool founder = Founder = Retry(TryFound);
            if (founder)
            {
                _log.WriteLine($"node {cluster.SelfAddress}: no member of this cluster is alive (PostgreSQL lock free): founding it");
                cluster.Join(cluster.SelfAddress);
            }
            else if (otherSeeds.Count > 0)
            {
                _log.WriteLine($"node {cluster.SelfAddress}: the cluster is alive: joining it through {string.Join(", ", otherSeeds)}");
                cluster.JoinSeedNodes(otherSeeds);
            }
            else
                _log.WriteLine($"node {cluster.SelfAddress}: the cluster is alive, but --seed-nodes names only this node: " +
                               "waiting (give the address of one of its nodes in --seed-nodes)");
            while (!founder && !up.Task.IsCompleted && !_stop.IsCancellationRequested)
            {
                await Task.WhenAny(up.Task, Task.Delay(TimeSpan.FromSeconds(5), _stop.Token).ContinueWith(_ => { }));
                if (up.Task.IsCompleted || _stop.IsCancellationRequested) break;
                if (Retry(TryFound))
                {
                    founder = Founder = true;
                    _log.WriteLine($"node {cluster.SelfAddress}: the cluster ended while this node was joining it: founding it again");
                    cluster.Join(cluster.SelfAddress);
                }
            }
            await Task.WhenAny(up.Task, Task.Delay(Timeout.Infinite, _stop.Token).ContinueWith(_ => { }));
            if (_stop.IsCancellationRequested) return;
            // Shared first, then the founder's exclusive hold goes (the same session may hold both): never a moment without it.
            Retry(() => Scalar("select pg_try_advisory_lock_shared(@k)"));
            if (founder) Retry(() => Scalar("select pg_advisory_unlock(@k)"));
            await HoldAsync(cluster.SelfAddress);
        });
    }

    /// <summary>Checks the lock's session every 10 s; when the connection was lost (PostgreSQL restarted), connects and takes the lock again.</summary>
    private async Task HoldAsync(Address self)
    {
        while (!_stop.IsCancellationRequested)
        {
            try { await Task.Delay(TimeSpan.FromSeconds(10), _stop.Token); } catch (OperationCanceledException) { return; }
            try { Scalar("select true"); }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException or TimeoutException)
            {
                try
                {
                    Connect();
                    Scalar("select pg_try_advisory_lock_shared(@k)");
                    _log.WriteLine($"node {self}: the journal's connection came back: membership lock taken again");
                }
                catch (Exception e2) when (e2 is NpgsqlException or InvalidOperationException or TimeoutException or System.Net.Sockets.SocketException)
                { _log.WriteLine($"node {self}: the cluster's PostgreSQL is unreachable ({e2.GetBaseException().Message}); retrying"); }
            }
        }
    }

    private bool Retry(Func<bool> query)
    {
        try { return query(); }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or TimeoutException)
        {
            try { Connect(); return query(); }
            catch (Exception e2) when (e2 is NpgsqlException or InvalidOperationException or TimeoutException or System.Net.Sockets.SocketException) { return false; }
        }
    }

    private void Connect()
    {
        _db?.Dispose();
        var b = new NpgsqlConnectionStringBuilder(_connection) { Pooling = false, ApplicationName = "ect node (cluster membership lock)" };
        _db = new NpgsqlConnection(b.ConnectionString);
        _db.Open();
    }

    private bool Scalar(string sql)
    {
        using var cmd = new NpgsqlCommand(sql, _db);
        cmd.Parameters.AddWithValue("k", _key);
        return cmd.ExecuteScalar() is true;
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        if (_loop is not null) try { await _loop; } catch (Exception e) when (e is NpgsqlException or InvalidOperationException) { }
        _db?.Dispose();
    }
}
