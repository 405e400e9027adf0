using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Cluster.Tools.Singleton;
using Akka.Configuration;
using Akka.Dispatch.SysMsg;
using Ect.Actors.Cluster;
using Ect.Actors.Cluster.Wire;
using FluentAssertions;
using Xunit;
using SerializationException = System.Runtime.Serialization.SerializationException;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// What a sweep node reads off the wire, in process: the serializers of a node's configuration (with Akka.Cluster,
/// sharding and the singleton loaded) are all either kept, filtered or refused; general-purpose formats, PoisonPill,
/// Kill, Status.Failure and non-watch system messages are refused; node-to-node sweep messages must carry the HMAC of
/// this cluster's token. The process-level attacks are in ClusterAttackTests.
/// </summary>
public sealed class ClusterWireTests : IAsyncLifetime
{
    private const string TokenA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    private const string TokenB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    private ActorSystem _node = null!;
    private ActorSystem _other = null!;

    private static ActorSystem Node(string name, string token) =>
        // A node's configuration on a free loopback port; nothing tells it to join (`ect node` does that), so it joins nothing.
        ActorSystem.Create(name, ClusterHocon.Node("127.0.0.1", 0, "Host=127.0.0.1;Port=1;Username=x;Database=x",
            TimeSpan.FromSeconds(5), "enable-ssl = off", token));

    public Task InitializeAsync()
    {
        _node = Node("wire-a", TokenA);
        _other = Node("wire-b", TokenB);
        // Load the modules' reference configurations (and so their serializer names) as a node does.
        ClusterSharding.Get(_node);
        _node.Settings.InjectTopLevelFallback(ClusterSingletonManager.DefaultConfig());
        _node.Settings.InjectTopLevelFallback(Akka.DistributedData.DistributedData.DefaultConfig());
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _node.Terminate();
        await _other.Terminate();
    }

    [Fact]
    public void Every_serializer_a_node_configures_is_kept_filtered_or_refused_and_the_refused_ones_are_unreachable()
    {
        var names = _node.Settings.Config.GetConfig("akka.actor.serializers").AsEnumerable().Select(kv => kv.Key).ToList();
        names.Should().Contain(["akka-cluster", "akka-sharding", "akka-singleton", "akka-data-replication", "json", "proto", "primitive"]);
        names.Except(ClusterWire.KeptSerializers).Except(ClusterWire.FilteredSerializers).Except(ClusterWire.RefusedSerializers)
            .Should().BeEmpty("a serializer an Akka module adds must be judged: kept (the cluster needs it) or refused");

        var s = _node.Serialization;
        s.FindSerializerForType(typeof(byte[])).Should().BeOfType<ClusterRefusingSerializer>();
        s.FindSerializerForType(typeof(Ect.Actors.Persistence.Events.RunFinished)).Should().BeOfType<ClusterRefusingSerializer>(
            "protobuf by type name (the run journal's events) does not travel on the cluster");
        s.FindSerializerForType(typeof(Uri)).Should().BeOfType<ClusterRefusingSerializer>("JSON for any CLR type is refused");
        s.FindSerializerForType(typeof(StartRun)).Should().BeOfType<ClusterSweepSerializer>();
        // The wire ids of the refused formats are unknown here: a peer's message in one of them finds no serializer.
        foreach (var id in new[] { 1, 2, 3, 4 })
            ((Action)(() => s.Deserialize([1, 2, 3], id, "System.String"))).Should().Throw<Exception>($"serializer id {id} is refused");
    }

    [Fact]
    public void PoisonPill_Kill_Status_Failure_and_non_watch_system_messages_are_refused_and_what_the_cluster_needs_is_read()
    {
        var misc = _node.Serialization.FindSerializerForType(typeof(Identify));
        misc.Should().BeOfType<ClusterMiscMessageSerializer>();
        misc.Identifier.Should().Be(16);
        var identify = new Identify(42);
        ((Identify)_node.Serialization.Deserialize(misc.ToBinary(identify), 16, "ID")).MessageId.Should().Be(42);

        var stock = new Akka.Remote.Serialization.MiscMessageSerializer((ExtendedActorSystem)_other);
        foreach (var (message, manifest) in new (object, string)[] { (PoisonPill.Instance, "PP"), (Kill.Instance, "K"), (new Status.Failure(new InvalidOperationException("x")), "STF") })
        {
            stock.Manifest(message).Should().Be(manifest);
            var bytes = stock.ToBinary(message);
            ((Action)(() => _node.Serialization.Deserialize(bytes, 16, manifest))).Should().Throw<SerializationException>()
                .WithMessage($"*refused*'{manifest}'*");
        }

        var system = _node.Serialization.FindSerializerForType(typeof(Terminate));
        system.Should().BeOfType<ClusterSystemMessageSerializer>();
        system.Identifier.Should().Be(22);
        var stockSystem = new Akka.Remote.Serialization.SystemMessageSerializer((ExtendedActorSystem)_other);
        ((Action)(() => system.FromBinary(stockSystem.ToBinary(new Terminate()), typeof(Terminate)))).Should().Throw<SerializationException>();
        ((Action)(() => system.FromBinary(stockSystem.ToBinary(new Suspend()), typeof(Suspend)))).Should().Throw<SerializationException>();
        var probe = _node.ActorOf(Props.Empty, "watched");
        var watch = new Watch((IInternalActorRef)probe, (IInternalActorRef)probe);
        system.FromBinary(stockSystem.ToBinary(watch), typeof(Watch)).Should().BeOfType<Watch>("remote death watch travels");
    }

    [Fact]
    public void Node_to_node_sweep_messages_are_read_only_with_the_HMAC_of_this_clusters_token()
    {
        var run = new RunSpec { RunId = "r-1", Configs = { "/etc/passwd" }, Sets = { "ect.run.engine=fake" } };
        var start = new StartRun { Sweep = "s", Run = run };
        var mine = (ClusterSweepSerializer)_node.Serialization.FindSerializerFor(start);
        var theirs = (ClusterSweepSerializer)_other.Serialization.FindSerializerFor(start);

        _node.Serialization.Deserialize(mine.ToBinary(start), ClusterSweepSerializer.SerializerId, "StartRunV1").Should().Be(start);
        var signedElsewhere = theirs.ToBinary(start);
        ((Action)(() => _node.Serialization.Deserialize(signedElsewhere, ClusterSweepSerializer.SerializerId, "StartRunV1")))
            .Should().Throw<SerializationException>().WithMessage("*not signed with this cluster's token*");
        ((Action)(() => _node.Serialization.Deserialize(Google.Protobuf.MessageExtensions.ToByteArray(start), ClusterSweepSerializer.SerializerId, "StartRunV1")))
            .Should().Throw<SerializationException>("a bare protobuf StartRun (no HMAC) is refused");
        var signed = mine.ToBinary(new CancelRun { RunId = "r-1" });
        ((Action)(() => _node.Serialization.Deserialize(signed, ClusterSweepSerializer.SerializerId, "StartRunV1")))
            .Should().Throw<SerializationException>("the HMAC covers the manifest: a signed CancelRun is not a StartRun");
        ((Action)(() => _node.Serialization.Deserialize([1, 2], ClusterSweepSerializer.SerializerId, "NodeSlotsV1")))
            .Should().Throw<SerializationException>("a frame shorter than the HMAC is refused, not a crash");

        // Client requests carry the token in a field (so that a wrong one gets a refusal) and are not signed.
        var query = new SweepStatusQuery { Name = "s", Token = "wrong" };
        _node.Serialization.Deserialize(theirs.ToBinary(query), ClusterSweepSerializer.SerializerId, "SweepStatusQueryV1").Should().Be(query);
    }

    [Fact]
    public void The_cluster_token_file_is_made_once_with_mode_0600_and_a_bad_one_is_refused_naming_the_file()
    {
        var root = Directory.CreateTempSubdirectory("ect-cluster-token-").FullName;
        var token = ClusterToken.EnsureIn(root);
        token.Should().MatchRegex("^[0-9a-f]{64}$");
        ClusterToken.EnsureIn(root).Should().Be(token, "a second node of the run root reads the first one's token");
        if (!OperatingSystem.IsWindows())
            File.GetUnixFileMode(ClusterToken.PathIn(root)).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        ClusterToken.Matches(token, token).Should().BeTrue();
        ClusterToken.Matches(token, token[..63] + (token[63] == '0' ? "1" : "0")).Should().BeFalse(); // a last digit that differs (it was "0", 1 time in 16)
        ClusterToken.Matches(token, null).Should().BeFalse();

        File.WriteAllText(ClusterToken.PathIn(root), "short");
        ((Action)(() => ClusterToken.EnsureIn(root))).Should().Throw<IOException>().WithMessage($"*{ClusterToken.PathIn(root)}*does not hold a token*");
        ((Action)(() => ClusterToken.Read(Path.Combine(root, "missing")))).Should().Throw<IOException>().WithMessage("*missing*cannot be read*");
    }
}
