using Akka.Actor;
using Akka.Remote.Serialization;
using Akka.Serialization;
using SerializationException = System.Runtime.Serialization.SerializationException;

namespace Ect.Actors.Cluster;

/// <summary>
/// Stands in, on a sweep node and on the `ect sweep`/`ect ctl --cluster` client, for every serializer Akka registers
/// that the sweep cluster does not need (<see cref="ClusterWire.RefusedSerializers"/>): Newtonsoft JSON and protobuf by
/// type name would build CLR types a peer names, byte arrays have no use here, and daemon-create would deploy actors here. Its id is not theirs, so a peer's message in one of those formats finds no
/// serializer and Akka.Remote logs and drops it; outbound, such a message fails here instead of travelling.
/// </summary>
public sealed class ClusterRefusingSerializer : SerializerWithStringManifest
{
    public const int SerializerId = 7402;

    public ClusterRefusingSerializer(ExtendedActorSystem system) : base(system) { }

    /// <summary>Akka passes a name's serialization-settings section (json has one) to this constructor: ignored.</summary>
    public ClusterRefusingSerializer(ExtendedActorSystem system, Akka.Configuration.Config settings) : base(system) { }

    public override int Identifier => SerializerId;

    public override string Manifest(object o) => throw Refused(o);

    public override byte[] ToBinary(object obj) => throw Refused(obj);

    public override object FromBinary(byte[] bytes, string manifest) =>
        throw new SerializationException($"sweep cluster: refused an inbound message of kind '{manifest}': only Akka.Cluster's own protocols and the sweep protocol travel between nodes.");

    private static SerializationException Refused(object o) =>
        new($"sweep cluster: {o.GetType().FullName} is not a message of the sweep cluster (Cluster/cluster.proto) nor of Akka.Cluster: it does not travel between nodes.");
}

/// <summary>
/// Akka.Remote's MiscMessageSerializer (id 16) limited, inbound, to what the cluster sends between nodes: Identify and
/// ActorIdentity (the singleton proxy finds the director with them), actor references and remote-watch heartbeats.
/// PoisonPill, Kill, Status.Failure (it builds an exception of a type the peer names), routers, scopes and configs are
/// refused: a peer cannot stop a node's actors or make them build objects.
/// </summary>
public sealed class ClusterMiscMessageSerializer : SerializerWithStringManifest
{
    private static readonly HashSet<string> Accepted = ["ID", "AID", "AR", "RWHB", "RWHR"];

    private readonly MiscMessageSerializer _inner;

    public ClusterMiscMessageSerializer(ExtendedActorSystem system) : base(system) => _inner = new MiscMessageSerializer(system);

    /// <summary>MiscMessageSerializer's id: the peers' Identify (id 16) is read here.</summary>
    public override int Identifier => 16;

    public override string Manifest(object o) => _inner.Manifest(o);

    public override byte[] ToBinary(object obj) => _inner.ToBinary(obj);

    public override object FromBinary(byte[] bytes, string manifest) => Accepted.Contains(manifest)
        ? _inner.FromBinary(bytes, manifest)
        : throw new SerializationException($"sweep cluster: refused an inbound Akka message of kind '{manifest}' (PoisonPill, Kill, Status.Failure, routers and configs do not travel between nodes).");
}

/// <summary>
/// Akka.Remote's SystemMessageSerializer (id 22) limited, inbound, to remote death watch (Watch, Unwatch,
/// DeathWatchNotification: sharding and the singleton watch actors on other nodes). Create, Recreate, Suspend, Resume,
/// Supervise, Failed and Terminate serve remote deployment, which the cluster does not use: refused, so a peer cannot
/// suspend or stop a node's actors.
/// </summary>
public sealed class ClusterSystemMessageSerializer : Serializer
{
    private static readonly HashSet<string> Accepted =
        ["Akka.Dispatch.SysMsg.Watch", "Akka.Dispatch.SysMsg.Unwatch", "Akka.Dispatch.SysMsg.DeathWatchNotification"];

    private readonly SystemMessageSerializer _inner;

    public ClusterSystemMessageSerializer(ExtendedActorSystem system) : base(system) => _inner = new SystemMessageSerializer(system);

    /// <summary>SystemMessageSerializer's id: the peers' Watch (id 22) is read here.</summary>
    public override int Identifier => 22;

    public override bool IncludeManifest => true;

    public override byte[] ToBinary(object obj) => _inner.ToBinary(obj);

    public override object FromBinary(byte[] bytes, Type? type) => type?.FullName is { } name && Accepted.Contains(name)
        ? _inner.FromBinary(bytes, type)
        : throw new SerializationException($"sweep cluster: refused an inbound system message {type?.FullName ?? "(no type)"} (only remote death watch travels between nodes).");
}
