using Akka.Configuration;

namespace Ect.Actors.Cluster;

/// <summary>
/// What a sweep node reads off the network, beside TLS (beyond loopback) and the cluster token (<see cref="ClusterToken"/>):
/// the serializers Akka.Cluster, Sharding (with distributed data and remember-entities), the singleton and the sweep
/// protocol need, nothing else (<see cref="RefusedSerializers"/> are rebound to <see cref="ClusterRefusingSerializer"/>;
/// Akka's misc and system-message serializers to filtered copies), untrusted mode with actor selection limited to
/// <see cref="TrustedSelectionPaths"/> (no remote deployment, no PoisonPill/Kill/Terminate from the wire), and a bounded
/// frame size. Kept, by name (from the reference.conf bindings of Akka.Remote, Akka.Cluster, Akka.Cluster.Sharding,
/// Akka.Cluster.Tools and Akka.DistributedData): akka-containers (the actor-selection envelope), akka-cluster (membership,
/// gossip, heartbeats), akka-sharding, akka-singleton, akka-data-replication and akka-replicated-data (sharding's state),
/// akka-persistence-message/-snapshot (wrappers whose payload goes through these same serializers), primitive (Identify's
/// id), ect-cluster-sweep.
/// ClusterWireTests checks that every serializer a node's configuration names is in one list or the other.
/// </summary>
public static class ClusterWire
{
    /// <summary>Serializers a sweep node keeps (besides akka-misc and akka-system-msg, which it filters).</summary>
    public static readonly IReadOnlyList<string> KeptSerializers =
    [
        "akka-containers", "akka-cluster", "akka-sharding", "akka-singleton", "akka-data-replication", "akka-replicated-data",
        "akka-persistence-message", "akka-persistence-snapshot", "ect-cluster-sweep",
        // Identify's id travels as a primitive payload (the singleton proxy's is a string): without it the proxy never
        // finds the director. A bare string or number sent to a node's actor is not acted on (each handles only its
        // protobuf messages and logs the rest).
        "primitive",
    ];

    /// <summary>Serializers refused on a sweep node and its clients (general-purpose formats, remote deployment, unused Akka modules).</summary>
    public static readonly IReadOnlyList<string> RefusedSerializers =
    [
        "json", "bytes", "hyperion", "proto", "daemon-create",
        "akka-pubsub", "akka-cluster-client", "reliable-delivery", "akka-stream-ref", "akka-cluster-metrics",
    ];

    /// <summary>Serializers replaced by a filtered copy (same id, fewer message kinds accepted inbound).</summary>
    public static readonly IReadOnlyList<string> FilteredSerializers = ["akka-misc", "akka-system-msg"];

    /// <summary>
    /// The actor paths a peer may address by actor selection: Akka.Cluster's core daemon (join, gossip, leave) and heartbeat
    /// receiver, the sharding coordinator's singleton manager and coordinator, sharding's replicator (distributed data),
    /// the sweep director's singleton manager and singleton (the proxy's Identify), the slot gate (free-slot allocation),
    /// and the receptionist the CLI talks to. Everything else (remote deployment, /user/sweep-director-proxy, an entity's
    /// path) is dropped by Akka.Remote.
    /// </summary>
    public static IReadOnlyList<string> TrustedSelectionPaths { get; } =
    [
        "/system/cluster/core/daemon",
        "/system/cluster/heartbeatReceiver",
        $"/system/sharding/{SweepRunEntity.TypeName}Coordinator",
        $"/system/sharding/{SweepRunEntity.TypeName}Coordinator/singleton/coordinator",
        "/system/sharding/replicator",
        $"/user/{SweepNode.DirectorName}",
        $"/user/{SweepNode.DirectorName}/singleton",
        "/user/slots",
        $"/user/{SweepReceptionist.Name}",
    ];

    /// <summary>The largest frame a node reads or writes (a sweep of ~10,000 runs); a peer that announces a longer one is disconnected.</summary>
    public const int MaximumFrameBytes = 4 * 1024 * 1024;

    /// <summary>Serializer rebinding for nodes and clients.</summary>
    public static Config Serialization { get; } = ConfigurationFactory.ParseString($$"""
        akka.actor {
          serializers {
            {{string.Join("\n    ", RefusedSerializers.Select(n => $"{n} = \"Ect.Actors.Cluster.ClusterRefusingSerializer, ect\""))}}
            akka-misc = "Ect.Actors.Cluster.ClusterMiscMessageSerializer, ect"
            akka-system-msg = "Ect.Actors.Cluster.ClusterSystemMessageSerializer, ect"
          }
          serialization-identifiers {
            "Ect.Actors.Cluster.ClusterRefusingSerializer, ect" = {{ClusterRefusingSerializer.SerializerId}}
            "Ect.Actors.Cluster.ClusterMiscMessageSerializer, ect" = 16
            "Ect.Actors.Cluster.ClusterSystemMessageSerializer, ect" = 22
          }
        }
        akka.remote.dot-netty.tcp {
          maximum-frame-size = {{MaximumFrameBytes}}b
        }
        """);

    /// <summary>Untrusted mode and the trusted selection paths of a node.</summary>
    public static Config NodeRemote { get; } = ConfigurationFactory.ParseString($$"""
        akka.remote {
          untrusted-mode = on
          trusted-selection-paths = [ {{string.Join(", ", TrustedSelectionPaths.Select(p => $"\"{p}\""))}} ]
        }
        """);

    /// <summary>A client is reached only by replies to its own requests: untrusted mode, no selection path at all.</summary>
    public static Config ClientRemote { get; } = ConfigurationFactory.ParseString("""
        akka.remote {
          untrusted-mode = on
          trusted-selection-paths = []
        }
        """);
}
