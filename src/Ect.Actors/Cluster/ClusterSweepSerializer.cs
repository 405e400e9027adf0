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
    };

    /// <summary>The CLR types this serializer is bound to (ClusterHocon binds each one).</summary>
    public static IEnumerable<Type> BoundTypes => Manifests.Keys;

    public override int Identifier => SerializerId;

    public override string Manifest(object o) =>
        Manifests.TryGetValue(o.GetType(), out var m) ? m : throw new ArgumentException($"ClusterSweepSerializer cannot serialize {o.GetType().Name}.", nameof(o));

    public override byte[] ToBinary(object obj) => obj is IMessage m && Manifests.ContainsKey(obj.GetType())
        ? m.ToByteArray()
        : throw new ArgumentException($"ClusterSweepSerializer cannot serialize {obj.GetType().Name}.", nameof(obj));

    public override object FromBinary(byte[] bytes, string manifest)
    {
        if (!Parsers.TryGetValue(manifest, out var parser))
            throw new SerializationException($"ClusterSweepSerializer: unknown manifest '{manifest}' (a newer node? known: {string.Join(", ", Parsers.Keys)}).");
        try { return parser.ParseFrom(bytes); }
        catch (InvalidProtocolBufferException e) { throw new SerializationException($"ClusterSweepSerializer: a corrupt {manifest} ({e.Message}).", e); }
    }
}
