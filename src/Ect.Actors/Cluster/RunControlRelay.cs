using Ect.Actors.Cli;
using Ect.Actors.Cluster.Wire;
using Ect.Actors.Control;
using Ect.Actors.Control.Proto;
using Google.Protobuf;

namespace Ect.Actors.Cluster;

/// <summary>
/// `ect ctl ... --run RUN --cluster HOST:PORT`: the control command travels as a <see cref="RunControl"/> (the control
/// protocol's RunCommandMessage inside, with the cluster token) to a node's receptionist, then to the run's entity
/// wherever it lives, which hands it to its trainer's own control endpoint on that machine (RUN_DIR/control.json and
/// control.token, loopback) and returns the trainer's reply; without a trainer the entity answers itself.
/// </summary>
public static class RunControlRelay
{
    /// <summary>The request a client sends.</summary>
    public static RunControl Request(string token, string runId, RunCommand command) =>
        new() { Token = token, RunId = runId, Command = ControlSerializer.ToProto(command).ToByteString() };

    /// <summary>The command inside a request, or null when it is not one the control protocol knows.</summary>
    public static RunCommand? CommandOf(RunControl m)
    {
        try { return ControlSerializer.FromProto(RunCommandMessage.Parser.ParseFrom(m.Command)); }
        catch (Exception e) when (e is InvalidProtocolBufferException or System.Runtime.Serialization.SerializationException) { return null; }
    }

    public static RunControlReply Reply(RunCommandReply reply) => new() { Reply = ControlSerializer.ToProto(reply).ToByteString() };

    public static RunControlReply Reply(RunControl m, bool accepted, string message, RunStatus? status = null) =>
        Reply(new RunCommandReply(CommandOf(m)?.IdempotencyKey ?? "", accepted, message, status));

    /// <summary>The control reply inside; a reply that is not one is reported as refused.</summary>
    public static RunCommandReply Decode(RunControlReply r)
    {
        try { return ControlSerializer.FromProto(RunCommandReplyMessage.Parser.ParseFrom(r.Reply)); }
        catch (InvalidProtocolBufferException e) { return new RunCommandReply("", false, $"the node's reply could not be read ({e.Message})", null); }
    }

    /// <summary>
    /// Sends <paramref name="command"/> to the trainer of <paramref name="runDir"/> (on this machine) and returns its
    /// reply; a trainer that cannot be reached is a refusal naming why (never an exception).
    /// </summary>
    public static async Task<RunControlReply> ToTrainer(string runId, string runDir, RunCommand command, TimeSpan timeout)
    {
        try
        {
            var (address, controlToken) = CtlVerb.Resolve(runDir, null, null, ControlEndpoint.SystemName);
            await using var client = ControlClient.Create(address, controlToken, timeout, attempts: 1);
            return Reply(await client.SendAsync(command));
        }
        catch (Exception e) when (e is ControlException or IOException or UnauthorizedAccessException)
        {
            return Reply(new RunCommandReply(command.IdempotencyKey, false,
                $"run {runId}: its trainer's control endpoint in {runDir} did not answer: {e.Message}", null));
        }
    }
}
