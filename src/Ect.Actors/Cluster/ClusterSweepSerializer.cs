using Akka.Actor;
using Akka.Serialization;
using Ect.Actors.Cluster.Wire;
using Google.Protobuf;
using SerializationException = System.Runtime.Serialization.SerializationException;

namespace Ect.Actors.Cluster;

/// <summary>
/// Protobuf serializer of the cluster sweep (Cluster/cluster.proto): the sweep director's and the run entities'
/// persisted events and the messages between nodes and `ect sweep`. The manifest is the message's name plus a
/// version ("SweepSubmittedV1"), never a CLR type name: moving a C# type changes nothing on the wire or in the
/// journal, and a peer cannot make a node build an arbitrary type. The generated classes are used as the messages
/// themselves and never changed after they are sent or persisted (protobuf classes are mutable; nothing here mutates
/// one it did not just build).
/// </summary>
public sealed class ClusterSweepSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    /// <summary>Serializer id (unique in the ActorSystem; the control protocol's is 7301, the run journal's 7201-ish).</summary>
    public const int SerializerId = 7401;

    private static readonly Dictionary<Type, string> Manifests = new()
    {
        [typeof(SweepSubmitted)] = "SweepSubmittedV1",
        [typeof(RunReleased)] = "RunReleasedV1",
        [typeof(RunOutcome)] = "RunOutcomeV1",
        [typeof(SweepCancelled)] = "SweepCancelledV1",
        [typeof(RunAssigned)] = "RunAssignedV1",
        [typeof(RunAttemptStarted)] = "RunAttemptStartedV1",
        [typeof(RunAttemptEnded)] = "RunAttemptEndedV1",
        [typeof(RunCancelRequested)] = "RunCancelRequestedV1",
        [typeof(StartRun)] = "StartRunV1",
        [typeof(CancelRun)] = "CancelRunV1",
        [typeof(RunEndedReport)] = "RunEndedReportV1",
        [typeof(RunRunningReport)] = "RunRunningReportV1",
        [typeof(NodeSlots)] = "NodeSlotsV1",
        [typeof(SlotQuery)] = "SlotQueryV1",
        [typeof(SubmitSweep)] = "SubmitSweepV1",
        [typeof(SweepReply)] = "SweepReplyV1",
        [typeof(SweepStatusQuery)] = "SweepStatusQueryV1",
        [typeof(SweepStatusReply)] = "SweepStatusReplyV1",
        [typeof(CancelSweep)] = "CancelSweepV1",
        [typeof(RunControl)] = "RunControlV1",
        [typeof(RunControlReply)] = "RunControlReplyV1",
    };

    private static readonly Dictionary<string, MessageParser> Parsers = new()
    {
        ["SweepSubmittedV1"] = SweepSubmitted.Parser,
        ["RunReleasedV1"] = RunReleased.Parser,
        ["RunOutcomeV1"] = RunOutcome.Parser,
        ["SweepCancelledV1"] = SweepCancelled.Parser,
        ["RunAssignedV1"] = RunAssigned.Parser,
        ["RunAttemptStartedV1"] = RunAttemptStarted.Parser,
        ["RunAttemptEndedV1"] = RunAttemptEnded.Parser,
        ["RunCancelRequestedV1"] = RunCancelRequested.Parser,
        ["StartRunV1"] = StartRun.Parser,
        ["CancelRunV1"] = CancelRun.Parser,
        ["RunEndedReportV1"] = RunEndedReport.Parser,
        ["RunRunningReportV1"] = RunRunningReport.Parser,
        ["NodeSlotsV1"] = NodeSlots.Parser,
        ["SlotQueryV1"] = SlotQuery.Parser,
        ["SubmitSweepV1"] = SubmitSweep.Parser,
        ["SweepReplyV1"] = SweepReply.Parser,
        ["SweepStatusQueryV1"] = SweepStatusQuery.Parser,
        ["SweepStatusReplyV1"] = SweepStatusReply.Parser,
        ["CancelSweepV1"] = CancelSweep.Parser,
        ["RunControlV1"] = RunControl.Parser,
        ["RunControlReplyV1"] = RunControlReply.Parser,
    };

    /// <summary>
    /// The messages only nodes send each other: on a node (ect.cluster.token set) each travels behind an HMAC-SHA256 of
    /// its manifest and bytes keyed with the cluster's token, and one without a valid HMAC is refused here (Akka.Remote
    /// logs and drops it): a process without RUN_ROOT/cluster.token cannot start, cancel or report a run, nor fake a
    /// node's slots, even by sending straight to a known actor path. Client requests carry the token in a field instead
    /// (so that a wrong token gets a refusal, not silence); replies and persisted events are not signed.
    /// </summary>
    public static readonly IReadOnlySet<string> SignedManifests = new HashSet<string>
    {
        "StartRunV1", "CancelRunV1", "RunEndedReportV1", "RunRunningReportV1", "NodeSlotsV1", "SlotQueryV1",
    };

    /// <summary>The configuration key of the token a node signs and checks its node-to-node messages with (set by `ect node`).</summary>
    public const string TokenKey = "ect.cluster.token";

    private const int MacLength = 32;

    private readonly byte[]? _key = system.Settings.Config.GetString(TokenKey, "") is { Length: > 0 } t ? System.Text.Encoding.UTF8.GetBytes(t) : null;

    /// <summary>The CLR types this serializer is bound to (ClusterHocon binds each one).</summary>
    public static IEnumerable<Type> BoundTypes => Manifests.Keys;

    public override int Identifier => SerializerId;

    public override string Manifest(object o) =>
        Manifests.TryGetValue(o.GetType(), out var m) ? m : throw new ArgumentException($"ClusterSweepSerializer cannot serialize {o.GetType().Name}.", nameof(o));

    public override byte[] ToBinary(object obj)
    {
        if (obj is not IMessage m || !Manifests.TryGetValue(obj.GetType(), out var manifest))
            throw new ArgumentException($"ClusterSweepSerializer cannot serialize {obj.GetType().Name}.", nameof(obj));
        var bytes = m.ToByteArray();
        if (_key is null || !SignedManifests.Contains(manifest)) return bytes;
        return [.. Mac(_key, manifest, bytes), .. bytes];
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        if (!Parsers.TryGetValue(manifest, out var parser))
            throw new SerializationException($"ClusterSweepSerializer: unknown manifest '{manifest}' (a newer node? known: {string.Join(", ", Parsers.Keys)}).");
        if (_key is not null && SignedManifests.Contains(manifest))
        {
            if (bytes.Length < MacLength || !System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
                    bytes.AsSpan(0, MacLength), Mac(_key, manifest, bytes.AsSpan(MacLength).ToArray())))
                throw new SerializationException($"ClusterSweepSerializer: refused a {manifest} not signed with this cluster's token (RUN_ROOT/cluster.token): " +
                                                 "only nodes of this run root may send it.");
            bytes = bytes[MacLength..];
        }
        try { return parser.ParseFrom(bytes); }
        catch (InvalidProtocolBufferException e) { throw new SerializationException($"ClusterSweepSerializer: a corrupt {manifest} ({e.Message}).", e); }
    }

    private static byte[] Mac(byte[] key, string manifest, byte[] payload) =>
        System.Security.Cryptography.HMACSHA256.HashData(key, (byte[])[.. System.Text.Encoding.UTF8.GetBytes(manifest), 0, .. payload]);
}
