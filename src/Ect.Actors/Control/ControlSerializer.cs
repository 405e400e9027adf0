using Akka.Actor;
using Akka.Serialization;
using Ect.Actors.Control.Proto;
using Google.Protobuf;
using SerializationException = System.Runtime.Serialization.SerializationException;

namespace Ect.Actors.Control;

/// <summary>
/// Protobuf serializer for the remote control messages (Control/control.proto). The manifest is a short fixed
/// string per message kind, never a CLR type name, so renaming or moving a C# type does not change the wire
/// format, and a client cannot ask the daemon to instantiate an arbitrary type.
/// Bound in <see cref="ControlEndpoint.SerializationConfig"/>.
/// </summary>
public sealed class ControlSerializer : SerializerWithStringManifest
{
    /// <summary>Serializer id (unique in the ActorSystem; user ids must be above 100).</summary>
    public const int SerializerId = 7301;

    public const string RequestManifest = "ctl-req";
    public const string CommandManifest = "ctl-cmd";
    public const string ReplyManifest = "ctl-reply";

    public ControlSerializer(ExtendedActorSystem system) : base(system) { }

    public override int Identifier => SerializerId;

    public override string Manifest(object o) => o switch
    {
        ControlRequest => RequestManifest,
        RunCommand => CommandManifest,
        RunCommandReply => ReplyManifest,
        _ => throw new ArgumentException($"ControlSerializer cannot serialize {o.GetType().Name}.", nameof(o)),
    };

    public override byte[] ToBinary(object obj) => obj switch
    {
        ControlRequest r => new ControlRequestMessage { Token = r.Token, Command = ToProto(r.Command) }.ToByteArray(),
        RunCommand c => ToProto(c).ToByteArray(),
        RunCommandReply r => ToProto(r).ToByteArray(),
        _ => throw new ArgumentException($"ControlSerializer cannot serialize {obj.GetType().Name}.", nameof(obj)),
    };

    public override object FromBinary(byte[] bytes, string manifest) => manifest switch
    {
        RequestManifest => FromProto(ControlRequestMessage.Parser.ParseFrom(bytes)),
        CommandManifest => FromProto(RunCommandMessage.Parser.ParseFrom(bytes)),
        ReplyManifest => FromProto(RunCommandReplyMessage.Parser.ParseFrom(bytes)),
        _ => throw new SerializationException($"ControlSerializer: unknown manifest '{manifest}'."),
    };

    internal static RunCommandMessage ToProto(RunCommand c)
    {
        var m = new RunCommandMessage { IdempotencyKey = c.IdempotencyKey };
        switch (c)
        {
            case GetStatus: m.Kind = CommandKind.GetStatus; break;
            case PauseRun: m.Kind = CommandKind.PauseRun; break;
            case ResumeRun: m.Kind = CommandKind.ResumeRun; break;
            case RequestCheckpoint: m.Kind = CommandKind.RequestCheckpoint; break;
            case RequestEvaluation: m.Kind = CommandKind.RequestEvaluation; break;
            case StopRun: m.Kind = CommandKind.StopRun; break;
            case SetStage s: m.Kind = CommandKind.SetStage; m.Stage = s.Stage; break;
            case SetConfigValue s: m.Kind = CommandKind.SetConfigValue; m.ConfigKey = s.Key; m.ConfigValue = s.Value; break;
            default: throw new ArgumentException($"ControlSerializer: no wire form for command {c.GetType().Name}.");
        }
        return m;
    }

    internal static RunCommand FromProto(RunCommandMessage m) => m.Kind switch
    {
        CommandKind.GetStatus => new GetStatus(m.IdempotencyKey),
        CommandKind.PauseRun => new PauseRun(m.IdempotencyKey),
        CommandKind.ResumeRun => new ResumeRun(m.IdempotencyKey),
        CommandKind.RequestCheckpoint => new RequestCheckpoint(m.IdempotencyKey),
        CommandKind.RequestEvaluation => new RequestEvaluation(m.IdempotencyKey),
        CommandKind.StopRun => new StopRun(m.IdempotencyKey),
        CommandKind.SetStage => new SetStage(m.IdempotencyKey, m.Stage),
        CommandKind.SetConfigValue => new SetConfigValue(m.IdempotencyKey, m.ConfigKey, m.ConfigValue),
        _ => throw new SerializationException($"ControlSerializer: unknown command kind {(int)m.Kind} (a newer client?)."),
    };

    private static ControlRequest FromProto(ControlRequestMessage m) =>
        new(m.Token, m.Command is null
            ? throw new SerializationException("ControlSerializer: control request without a command.")
            : FromProto(m.Command));

    internal static RunCommandReplyMessage ToProto(RunCommandReply r)
    {
        var m = new RunCommandReplyMessage { IdempotencyKey = r.IdempotencyKey, Accepted = r.Accepted, Message = r.Message ?? "" };
        if (r.Status is { } s)
        {
            var sm = new RunStatusMessage
            {
                RunId = s.RunId ?? "", Phase = s.Phase ?? "", Step = s.Step, Kimg = s.Kimg, Stage = s.Stage, Paused = s.Paused,
            };
            if (s.LastLoss is { } loss) sm.LastLoss = loss;
            if (s.ImagesPerSecond is { } ips) sm.ImagesPerSecond = ips;
            if (s.LastCheckpoint is { } ck) sm.LastCheckpoint = ck;
            sm.WorldSize = s.WorldSize;
            if (s.Device is { } device) sm.Device = device;
            m.Status = sm;
        }
        return m;
    }

    internal static RunCommandReply FromProto(RunCommandReplyMessage m)
    {
        RunStatus? status = null;
        if (m.Status is { } s)
            status = new RunStatus(s.RunId, s.Phase, s.Step, s.Kimg, s.Stage, s.Paused,
                s.HasLastLoss ? s.LastLoss : null,
                s.HasImagesPerSecond ? s.ImagesPerSecond : null,
                s.HasLastCheckpoint ? s.LastCheckpoint : null,
                s.HasWorldSize && s.WorldSize >= 1 ? s.WorldSize : 1,
                s.HasDevice ? s.Device : null);
        return new RunCommandReply(m.IdempotencyKey, m.Accepted, m.Message, status);
    }
}
