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

    /// <summary>A node's configuration (TLS, when given, is added by <see cref="ClusterTls"/>).</summary>
    public static Config Node(string hostname, int port, string pgConnection, TimeSpan downAfter, string tls, string token)
    {
        var ect = ConfigurationFactory.ParseString(
            $"ect.persistence.provider = postgresql\nect.persistence.connection-string = {PersistenceHocon.Quote(pgConnection)}\n" +
            $"{ClusterSweepSerializer.TokenKey} = {PersistenceHocon.Quote(token)}");
        return ConfigurationFactory.ParseString($$"""
            akka {
              loglevel = WARNING
              stdout-loglevel = WARNING
              log-dead-letters = off
              log-dead-letters-during-shutdown = off
              coordinated-shutdown.run-by-clr-shutdown-hook = on
              actor.provider = cluster
              remote {
                log-remote-lifecycle-events = off
                dot-netty.tcp {
                  hostname = {{PersistenceHocon.Quote(hostname)}}
                  port = {{port}}
                  {{tls}}
                }
              }
              cluster {
                # No seed-nodes here: `ect node` joins by itself (ClusterFounding), founding the cluster only when
                # PostgreSQL shows no member alive, else joining the seed nodes other than itself until one lets it in.
                # A node's own `ect train` children keep its cores busy, and heartbeats then arrive seconds late: with
                # Akka's 3 s pause, a node that had just come back and one survivor marked each other unreachable under
                # load, and the resolver downed both as "indirectly connected" (and with them the whole cluster:
                # ClusterSweepTests in a clean-clone run beside a training sweep, 2026-12-02). A dead node is still
                # found within ~10 s (its TCP connection drops at once; the pause only tolerates late heartbeats).
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
            """).WithFallback(ClusterWire.NodeRemote).WithFallback(Serialization).WithFallback(ClusterWire.Serialization)
            .WithFallback(ect).WithFallback(PersistenceHocon.For(ect, Path.GetTempPath()));
    }

    /// <summary>The `ect sweep` client's configuration: plain remoting on a free loopback (or given) port.</summary>
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
