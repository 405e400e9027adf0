using Akka.Configuration;
using Ect.Actors.Persistence;

namespace Ect.Actors.Cluster;

/// <summary>
/// The HOCON of a sweep node (`ect node`) and of the `ect sweep` client. Akka.Cluster does membership and failure
/// detection, the split-brain resolver (keep-majority) downs an unreachable node after <c>downAfter</c>, sharding keeps
/// its coordinator state in distributed data and remembers entities in the journal (so a run that was training on a
/// dead node starts again elsewhere), and the journal and snapshot store are the shared PostgreSQL.
/// </summary>
public static class ClusterHocon
{
    /// <summary>The ActorSystem name every node of a sweep cluster uses (part of every address: akka.tcp://ect-sweeps@HOST:PORT).</summary>
    public const string SystemName = "ect-sweeps";

    /// <summary>Shards of the run entities: ~10x the largest node count, and more than a sweep's usual runs (see FreeSlotAllocation); never change it on a live cluster.</summary>
    public const int ShardCount = 100;

    /// <summary>Serialization of every cluster sweep message (nodes and client): protobuf with explicit manifests.</summary>
    public static Config Serialization { get; } = ConfigurationFactory.ParseString($$"""
        akka.actor {
          serializers { ect-cluster-sweep = "Ect.Actors.Cluster.ClusterSweepSerializer, ect" }
          serialization-bindings {
            {{string.Join("\n    ", ClusterSweepSerializer.BoundTypes.Select(t => $"\"{t.FullName}, ect\" = ect-cluster-sweep"))}}
          }
          serialization-identifiers { "Ect.Actors.Cluster.ClusterSweepSerializer, ect" = {{ClusterSweepSerializer.SerializerId}} }
        }
        """);

    /// <summary>The transport's protocol in addresses: akka.ssl.tcp with TLS, akka.tcp without.</summary>
    public static string Protocol(bool tls) => tls ? "akka.ssl.tcp" : "akka.tcp";

    /// <summary>"HOST:PORT" as a seed-node address.</summary>
    public static string SeedAddress(string hostPort, bool tls)
    {
        var (host, port) = ParseHostPort(hostPort, "--seed-nodes");
        return $"{Protocol(tls)}://{SystemName}@{host}:{port}";
    }

    /// <summary>Parses HOST:PORT (a port 1-65535); throws ArgumentException naming <paramref name="option"/> and the value.</summary>
    public static (string Host, int Port) ParseHostPort(string hostPort, string option)
    {
        var i = hostPort.LastIndexOf(':');
        if (i <= 0 || !int.TryParse(hostPort[(i + 1)..], out var port) || port is < 1 or > 65535)
            throw new ArgumentException($"{option} \"{hostPort}\": expected HOST:PORT with a port 1-65535, e.g. 127.0.0.1:4053.");
        return (hostPort[..i], port);
    }

    /// <summary>Environment variable with HOCON that `ect node` puts over its own configuration (troubleshooting only).</summary>
    public const string DiagnosticHoconVariable = "ECT_NODE_DIAGNOSTIC_HOCON";

    /// <summary>A node's configuration (TLS, when given, is added by <see cref="ClusterTls"/>).</summary>
    public static Config Node(string hostname, int port, string pgConnection, TimeSpan downAfter, string tls, string token)
    {
        var ect = ConfigurationFactory.ParseString(
            $"ect.persistence.provider = postgresql\nect.persistence.connection-string = {PersistenceHocon.Quote(pgConnection)}\n" +
            $"{ClusterSweepSerializer.TokenKey} = {PersistenceHocon.Quote(token)}");
        // Troubleshooting: HOCON from the operator's environment over everything below, e.g. `akka.loglevel = DEBUG` and
        // `akka.cluster.debug.verbose-heartbeat-logging = on` (how the crossing of connections above was found).
        Config diagnostics = Config.Empty;
        if (Environment.GetEnvironmentVariable(DiagnosticHoconVariable) is { Length: > 0 } d)
        {
            try { diagnostics = ConfigurationFactory.ParseString(d); }
            catch (Exception e) { throw new ArgumentException($"{DiagnosticHoconVariable}: not HOCON ({e.Message}); unset it or fix it.", e); }
        }
        return diagnostics.WithFallback(ConfigurationFactory.ParseString($$"""
            akka {
              loglevel = WARNING
              stdout-loglevel = WARNING
              log-dead-letters = off
              log-dead-letters-during-shutdown = off
              coordinated-shutdown.run-by-clr-shutdown-hook = on
              actor.provider = cluster
              remote {
                log-remote-lifecycle-events = off
                # A node writes to a peer only over a connection it opened itself and reads what the peer writes over
                # the connection the peer opened (Akka's "passive connections" off). With them on (Akka's default) a node
                # also writes back over a peer's connection, and two nodes that connect to each other at the same moment
                # can cross: when a killed node came back on its address while a survivor was reconnecting to that address
                # (to redeliver system messages meant for the previous incarnation, 5 s after the kill), the returned node
                # read only the survivor's new connection while the survivor wrote only on the returned node's, so all the
                # survivor sent (heartbeats too) was dropped unread, each marked the other unreachable and the resolver
                # downed both (ClusterSweepTests in CI, 2026-12-02 and -03; reproduced with Akka's debug log on 2026-12-03:
                # "Heartbeat from" arrived, no "Heartbeat response from" ever did). Akka.NET's own restart spec
                # (RemoteRestartedQuarantinedSpec) turns them off for the same race. The cost: a peer must be able to
                # connect back, so a client binds an address the nodes reach (ClientHostname).
                use-passive-connections = off
                dot-netty.tcp {
                  hostname = {{PersistenceHocon.Quote(hostname)}}
                  port = {{port}}
                  {{tls}}
                }
              }
              cluster {
                # No seed-nodes here: `ect node` joins by itself (ClusterFounding), founding the cluster only when
                # PostgreSQL shows no member alive, else joining the seed nodes other than itself until one lets it in.
                # A node's own `ect train` children keep its cores busy, and heartbeats then arrive seconds late
                # (2.7 s seen in CI): 10 s, not Akka's 3 s, before a silent member is marked unreachable. A dead node is
                # still found within ~10 s. (This was first raised for a returned node and a survivor that marked each
                # other unreachable, 2026-12-02; that was the crossing of connections under remote {} above, not load.)
                failure-detector.acceptable-heartbeat-pause = 10s
                downing-provider-class = "Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster"
                split-brain-resolver {
                  active-strategy = keep-majority
                  stable-after = {{(int)downAfter.TotalMilliseconds}}ms
                }
                # A node downed by the resolver (the minority side of a partition) ends its ActorSystem; `ect node`
                # then exits, and its `ect train` children with it (they watch their parent).
                run-coordinated-shutdown-when-down = on
                sharding {
                  state-store-mode = ddata
                  remember-entities = on
                  remember-entities-store = eventsourced
                  distributed-data.durable.keys = []
                  # A finished run passivates itself; nothing else ends an entity.
                  passivate-idle-entity-after = off
                  # No rebalancing: moving a shard hands its entities off, which stops their trainers (a checkpoint and
                  # a restart elsewhere: wasted work). A run moves only when its node dies or leaves.
                  rebalance-interval = 3650d
                  # Loading a shard's remembered entities from the journal took over the 5 s default on a loaded
                  # 2-core machine (the shard then backs off and retries): give the journal more time.
                  updating-state-timeout = 15s
                }
                singleton.hand-over-retry-interval = 1s
              }
            }
            """)).WithFallback(ClusterWire.NodeRemote).WithFallback(Serialization).WithFallback(ClusterWire.Serialization)
            .WithFallback(ect).WithFallback(PersistenceHocon.For(ect, Path.GetTempPath()));
    }

    /// <summary>
    /// The address an `ect sweep` / `ect ctl --cluster` client binds: nodes answer it over a connection they open to it
    /// (passive connections are off, see <see cref="Node"/>), so it must be one they reach. 127.0.0.1 when every node
    /// is on loopback; else this machine's source address on its route to the first other node (the address that node
    /// sees the client connect from; a UDP "connect" picks it and sends nothing). Throws ArgumentException naming the
    /// node when there is no route to it.
    /// </summary>
    public static string ClientHostname(IReadOnlyList<string> nodes)
    {
        var hosts = nodes.Select(n => ParseHostPort(n, "--cluster")).ToList();
        if (hosts.All(h => Control.ControlEndpoint.IsLoopback(h.Host))) return "127.0.0.1";
        var (host, port) = hosts.First(h => !Control.ControlEndpoint.IsLoopback(h.Host));
        try
        {
            var target = System.Net.IPAddress.TryParse(host.Trim('[', ']'), out var ip) ? ip : System.Net.Dns.GetHostAddresses(host).First();
            using var probe = new System.Net.Sockets.Socket(target.AddressFamily, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
            probe.Connect(new System.Net.IPEndPoint(target, port));
            var local = ((System.Net.IPEndPoint)probe.LocalEndPoint!).Address;
            return (local.IsIPv4MappedToIPv6 ? local.MapToIPv4() : local).ToString();
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or InvalidOperationException)
        {
            throw new ArgumentException($"--cluster {host}:{port}: this machine has no route to that node ({e.Message}); " +
                                        "the client must be reachable from the nodes (they answer over a connection of their own).");
        }
    }

    /// <summary>The `ect sweep` client's configuration: plain remoting on a free port of <paramref name="hostname"/> (see <see cref="ClientHostname"/>).</summary>
    public static Config Client(string hostname, string tls) => ConfigurationFactory.ParseString($$"""
        akka {
          # A short-lived client: the disconnect warnings of its own shutdown are noise.
          loglevel = ERROR
          stdout-loglevel = ERROR
          log-dead-letters = off
          log-dead-letters-during-shutdown = off
          actor.provider = remote
          remote {
            log-remote-lifecycle-events = off
            dot-netty.tcp {
              hostname = {{PersistenceHocon.Quote(hostname)}}
              port = 0
              {{tls}}
            }
          }
        }
        """).WithFallback(ClusterWire.ClientRemote).WithFallback(Serialization).WithFallback(ClusterWire.Serialization);
}
