using System.CommandLine;
using Akka.Actor;
using Ect.Actors.Cluster;
using Ect.Actors.Postgres;
using Ect.Actors.Sweeps;

namespace Ect.Actors.Cli;

/// <summary>
/// `ect node --seed-nodes HOST:PORT[,...] --run-root DIR [--journal PG] [--slots N] [--threads T] [--hostname H --port P]`:
/// a member of a sweep cluster (issue 19). It trains up to N runs of submitted sweeps at once, each an `ect train`
/// child on RUN_ROOT/RUN_ID (a folder every node sees: one machine, or a shared mount), and keeps the cluster's state
/// (sweeps, run entities, sharding) in the shared PostgreSQL journal. Runs until SIGTERM / Ctrl-C (it leaves the
/// cluster; its runs checkpoint and continue on the other nodes) or until the cluster downs it.
/// Exit codes: 0 left the cluster, 1 downed or failed, 2 bad arguments or PostgreSQL unreachable.
/// </summary>
public sealed class NodeVerb : ICliVerb
{
    public int Order => 66;

    /// <summary>How long a joining node waits to be let in before it starts again as a new incarnation (see Run).</summary>
    public static readonly TimeSpan JoinRetry = TimeSpan.FromSeconds(30);
    public int UsageErrorExitCode => 2;

    public Command Build()
    {
        var cmd = new Command("node", "Join a sweep cluster and train up to --slots runs of its sweeps at once (see `ect sweep submit`).");
        var seeds = new Option<string>("--seed-nodes") { Description = "HOST:PORT[,HOST:PORT...] of nodes of the cluster to join through (the same list on every node; a node's own address in it is skipped: the first node up founds the cluster, any other joins it, whatever the order).", Required = true };
        var root = new Option<string>("--run-root") { Description = "The shared folder of run directories (RUN_ROOT/RUN_ID): the same folder on every node.", Required = true };
        var journal = new Option<string>("--journal") { Description = $"PostgreSQL connection string of the cluster's journal (default: ${PostgresPersistence.EnvironmentVariable})." };
        var slots = new Option<int>("--slots") { Description = "Runs trained at once on this node (default: the cores / --threads).", DefaultValueFactory = _ => 0 };
        var threads = new Option<int>("--threads") { Description = "Threads per run (default 1).", DefaultValueFactory = _ => 1 };
        var host = new Option<string>("--hostname") { Description = "Address this node binds and is reached at (default 127.0.0.1; beyond loopback, TLS cannot be turned off).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port (default 0: a free one; a seed node gives its seed port).", DefaultValueFactory = _ => 0 };
        var downAfter = new Option<double>("--down-after") { Description = "Seconds an unreachable node stays before the split-brain resolver (keep-majority) downs it (default 20).", DefaultValueFactory = _ => 20 };
        var tls = ClusterTls.Options();
        foreach (var o in new Option[] { seeds, root, journal, slots, threads, host, port, downAfter }.Concat(tls.All)) cmd.Options.Add(o);
        cmd.SetAction(r => Run(r.GetValue(seeds)!, r.GetValue(root)!, r.GetValue(journal), r.GetValue(slots), r.GetValue(threads),
            r.GetValue(host)!, r.GetValue(port), r.GetValue(downAfter), tls.From(r)));
        return cmd;
    }

    public static int Run(string seedList, string runRoot, string? journal, int slots, int threads, string hostname, int port, double downAfter, ClusterTls tls)
    {
        if (threads < 1 || slots < 0 || port is < 0 or > 65535 || !(downAfter > 0))
        {
            Console.Error.WriteLine($"ect node: --threads {threads} / --slots {slots} / --port {port} / --down-after {downAfter}: use threads >= 1, slots >= 1, a port 0-65535, down-after > 0.");
            return 2;
        }
        if (slots == 0) slots = Math.Max(1, Environment.ProcessorCount / threads);
        var seeds = seedList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        try
        {
            foreach (var s in seeds) ClusterHocon.ParseHostPort(s, "--seed-nodes");
            tls.CheckAddress(hostname);
        }
        catch (ArgumentException e) { Console.Error.WriteLine($"ect node: {e.Message}"); return 2; }
        if (seeds.Length == 0) { Console.Error.WriteLine("ect node: --seed-nodes is empty: give HOST:PORT of at least one node (the first node lists itself)."); return 2; }
        var connection = journal is { Length: > 0 } ? journal : Environment.GetEnvironmentVariable(PostgresPersistence.EnvironmentVariable);
        if (string.IsNullOrWhiteSpace(connection))
        {
            Console.Error.WriteLine($"ect node: no PostgreSQL journal: give --journal \"Host=...;Port=...;Username=...;Database=...\" or set {PostgresPersistence.EnvironmentVariable} (scripts/postgres.sh start DIR PORT prints one).");
            return 2;
        }
        if (ClusterPreflight.CheckPostgres(connection) is { } refusal) { Console.Error.WriteLine($"ect node: {refusal}"); return 2; }
        runRoot = Path.GetFullPath(runRoot);
        try { Directory.CreateDirectory(runRoot); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Console.Error.WriteLine($"ect node: --run-root {runRoot}: {e.Message}"); return 2; }
        string token;
        try { token = ClusterToken.EnsureIn(runRoot); }
        catch (IOException e) { Console.Error.WriteLine($"ect node: {e.Message}"); return 2; }
        string tlsHocon;
        try
        {
            tls = tls.ForNode(runRoot);
            tlsHocon = tls.Hocon(hostname);
        }
        catch (Exception e) when (e is ArgumentException or IOException) { Console.Error.WriteLine($"ect node: {e.Message}"); return 2; }

        bool leaving = false;
        ActorSystem? current = null;
        void Leave()
        {
            if (leaving) return;
            leaving = true;
            if (current is not { } s) return;
            Console.WriteLine($"node {Akka.Cluster.Cluster.Get(s).SelfAddress}: leaving the cluster (runs here checkpoint and continue elsewhere)");
            _ = CoordinatedShutdown.Get(s).Run(CoordinatedShutdown.ClusterLeavingReason.Instance);
        }
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; Leave(); };
        using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; Leave(); });
        Address self = null!;
        for (int incarnation = 1; ; incarnation++)
        {
            ActorSystem system;
            try { system = ActorSystem.Create(ClusterHocon.SystemName, tls.Setup(ClusterHocon.Node(hostname, port, connection, TimeSpan.FromSeconds(downAfter), tlsHocon, token))); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                var diagnostics = Environment.GetEnvironmentVariable(ClusterHocon.DiagnosticHoconVariable) is { Length: > 0 }
                    ? $" ({ClusterHocon.DiagnosticHoconVariable} is set and goes over the node's configuration: check it or unset it)" : "";
                Console.Error.WriteLine($"ect node: cannot start on {hostname}:{port}: {e.GetBaseException().Message}{diagnostics}");
                return 2;
            }
            current = system;
            var cluster = Akka.Cluster.Cluster.Get(system);
            self = cluster.SelfAddress;
            port = self.Port ?? port;   // a later incarnation binds the same port (--port 0 picked a free one)
            if (leaving) { system.Terminate().Wait(); break; }
            SweepNode.Start(system, runRoot, slots, threads, LocalSweepExecutor.Self(), token);
            system.ActorOf(MembershipLog.Props(Console.Out), MembershipLog.Name);
            var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            cluster.RegisterOnMemberUp(() =>
            {
                Console.WriteLine($"node {cluster.SelfAddress}: up; {slots} slot(s) x {threads} thread(s), run root {runRoot}");
                up.TrySetResult();
            });
            Console.WriteLine($"node {cluster.SelfAddress}: joining {string.Join(", ", seeds)}" +
                              (tls.Enabled ? $" (mutual TLS, certificate {tls.CertificatePath}, pinned {string.Join(", ", tls.Pins)})" : " (no TLS: --insecure-no-tls)"));
            // Found the cluster or join it: PostgreSQL's lock says whether a member is alive (ClusterFounding: why not
            // Akka's first-seed rule). The seed list without this node's own address: only the lock lets a node join itself.
            ClusterFounding founding;
            try { founding = ClusterFounding.Open(connection, token, Console.Out); }
            catch (Exception e) when (e is Npgsql.NpgsqlException or InvalidOperationException or TimeoutException or System.Net.Sockets.SocketException)
            {
                Console.Error.WriteLine($"ect node: the cluster's PostgreSQL journal: {e.GetBaseException().Message}; nothing was started.");
                system.Terminate().Wait();
                return 2;
            }
            var otherSeeds = seeds.Select(s => Address.Parse(ClusterHocon.SeedAddress(s, tls.Enabled)))
                .Where(a => !(a.Port == self.Port && string.Equals(a.Host, self.Host, StringComparison.OrdinalIgnoreCase))).ToList();
            founding.Start(cluster, otherSeeds);
            // A node restarted on its address while the others still hold its previous incarnation was seen to wait for
            // ever: its InitJoin went unanswered after the others removed that incarnation (ClusterRejoinTests under load,
            // 2026-12-02; a restart after the removal joined in 4 s). Most likely the crossing of connections that
            // passive connections allowed (ClusterHocon.Node: the InitJoinAck travelled on a connection the node no
            // longer read); kept as a second line. Not let in within JoinRetry, it starts again as a
            // new incarnation (a new ActorSystem on the same port), whose association the others accept afresh.
            // A node the cluster has let in (Joining: the leader moves it up once no member is unreachable) waits on.
            bool LetIn() => cluster.State.Members.Any(m => m.UniqueAddress.Equals(cluster.SelfUniqueAddress));
            do Task.WaitAny(up.Task, system.WhenTerminated, Task.Delay(JoinRetry));
            while (!up.Task.IsCompleted && !system.WhenTerminated.IsCompleted && LetIn());
            if (!up.Task.IsCompleted && !system.WhenTerminated.IsCompleted && !founding.Founder && !leaving)
            {
                Console.WriteLine($"node {self}: not let into the running cluster within {JoinRetry.TotalSeconds:F0} s (incarnation {incarnation}): starting again as a new incarnation");
                founding.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5));
                system.Terminate().Wait(TimeSpan.FromSeconds(30));
                continue;
            }
            system.WhenTerminated.Wait();
            founding.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5));
            break;
        }
        // Its trainers were asked to checkpoint and stop (SIGTERM) as their entities stopped: let them finish that.
        if (TrainChild.WaitForAll(TimeSpan.FromMinutes(2)) is > 0 and var left)
            Console.Error.WriteLine($"node {self}: {left} trainer(s) still running after 2 minutes; they end with this process (their runs resume from the last checkpoint).");
        Console.WriteLine($"node {self}: stopped{(leaving ? "" : " (downed by the cluster)")}");
        return leaving ? 0 : 1;
    }
}
