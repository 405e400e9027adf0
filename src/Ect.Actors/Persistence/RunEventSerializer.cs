using Akka.Actor;
using Akka.Serialization;
using Ect.Actors.Persistence.Events;
using Google.Protobuf;

namespace Ect.Actors.Persistence;

/// <summary>
/// Serializes the run's journal events and snapshots as protobuf with a stable string manifest
/// ("RunStarted.v1"), so that renaming or moving a CLR type never breaks the replay of an old journal
/// (Akka's default JSON serializer writes CLR type names).
/// </summary>
public sealed class RunEventSerializer : SerializerWithStringManifest
{
    private static readonly Dictionary<Type, string> Manifests = new()
    {
        [typeof(RunStarted)] = "RunStarted.v1",
        [typeof(PhaseChanged)] = "PhaseChanged.v1",
        [typeof(StageAdvanced)] = "StageAdvanced.v1",
        [typeof(CheckpointCommitted)] = "CheckpointCommitted.v1",
        [typeof(EvaluationRecorded)] = "EvaluationRecorded.v1",
        [typeof(ConfigChanged)] = "ConfigChanged.v1",
        [typeof(RunPaused)] = "RunPaused.v1",
        [typeof(RunResumed)] = "RunResumed.v1",
        [typeof(RunInterrupted)] = "RunInterrupted.v1",
        [typeof(RolledBack)] = "RolledBack.v1",
        [typeof(RunFinished)] = "RunFinished.v1",
        [typeof(CommandApplied)] = "CommandApplied.v1",
        [typeof(RunExtended)] = "RunExtended.v1",
        [typeof(RunSnapshot)] = "RunSnapshot.v1",
        [typeof(RunDirectoryChanged)] = "RunDirectoryChanged.v1",
        [typeof(WorldSizeChanged)] = "WorldSizeChanged.v1",
        [typeof(RanksDiverged)] = "RanksDiverged.v1",
    };

    private static readonly Dictionary<string, MessageParser> Parsers = new()
    {
        ["RunStarted.v1"] = RunStarted.Parser,
        ["PhaseChanged.v1"] = PhaseChanged.Parser,
        ["StageAdvanced.v1"] = StageAdvanced.Parser,
        ["CheckpointCommitted.v1"] = CheckpointCommitted.Parser,
        ["EvaluationRecorded.v1"] = EvaluationRecorded.Parser,
        ["ConfigChanged.v1"] = ConfigChanged.Parser,
        ["RunPaused.v1"] = RunPaused.Parser,
        ["RunResumed.v1"] = RunResumed.Parser,
        ["RunInterrupted.v1"] = RunInterrupted.Parser,
        ["RolledBack.v1"] = RolledBack.Parser,
        ["RunFinished.v1"] = RunFinished.Parser,
        ["CommandApplied.v1"] = CommandApplied.Parser,
        ["RunExtended.v1"] = RunExtended.Parser,
        ["RunSnapshot.v1"] = RunSnapshot.Parser,
        ["RunDirectoryChanged.v1"] = RunDirectoryChanged.Parser,
        ["WorldSizeChanged.v1"] = WorldSizeChanged.Parser,
        ["RanksDiverged.v1"] = RanksDiverged.Parser,
    };

    /// <summary>The HOCON that binds every journal type to this serializer.</summary>
    public static string Hocon
    {
        get
        {
            var bindings = string.Join("\n", Manifests.Keys.Select(t =>
                $"\"{t.FullName}, {t.Assembly.GetName().Name}\" = ect-run-events"));
            return $$"""
                akka.actor {
                  serializers { ect-run-events = "{{typeof(RunEventSerializer).FullName}}, {{typeof(RunEventSerializer).Assembly.GetName().Name}}" }
                  serialization-bindings { {{bindings}} }
                  serialization-identifiers { "{{typeof(RunEventSerializer).FullName}}, {{typeof(RunEventSerializer).Assembly.GetName().Name}}" = 4711 }
                }
                """;
        }
    }

    public RunEventSerializer(ExtendedActorSystem system) : base(system) { }

    public override int Identifier => 4711;

    public override byte[] ToBinary(object obj) =>
        obj is IMessage m ? m.ToByteArray() : throw new ArgumentException($"Cannot serialize {obj.GetType()}");

    public override object FromBinary(byte[] bytes, string manifest) => Parse(bytes, manifest);

    public static IMessage Parse(byte[] bytes, string manifest) =>
        Parsers.TryGetValue(manifest, out var parser)
            ? parser.ParseFrom(bytes)
            : throw new System.Runtime.Serialization.SerializationException($"Unknown run event manifest '{manifest}' (journal written by a newer ect?)");

    public override string Manifest(object o) =>
        Manifests.TryGetValue(o.GetType(), out var m) ? m : throw new ArgumentException($"No manifest for {o.GetType()}");
}
