using Akka.Actor;
using Akka.Event;
using Ect.Actors.Cluster.Wire;

namespace Ect.Actors.Cluster;

/// <summary>
/// /user/sweeps on every node: what `ect sweep submit|status|cancel|results --cluster HOST:PORT` talks to (Akka.Remote,
/// an actor selection of this path). It hands the request to the sweep director wherever the singleton lives and the
/// director's answer back; a status answer gets this node's run root (where the CLI reads steps and metrics).
/// </summary>
public sealed class SweepReceptionist : ReceiveActor
{
    public const string Name = "sweeps";

    private readonly string _token;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public SweepReceptionist(IActorRef director, IActorRef runs, string runRoot, string token)
    {
        if (string.IsNullOrEmpty(token)) throw new ArgumentException("The cluster token may not be empty.", nameof(token));
        _token = token;
        var timeout = TimeSpan.FromSeconds(15);
        // Every request is checked here (constant time) before anything else sees it; a refusal names the fix.
        ReceiveAsync<SubmitSweep>(async m => Sender.Tell(Authorized(m.Token, "submit") ? await Ask<SweepReply>(director, m, timeout, "submit") : Refusal()));
        ReceiveAsync<CancelSweep>(async m => Sender.Tell(Authorized(m.Token, "cancel") ? await Ask<SweepReply>(director, m, timeout, "cancel") : Refusal()));
        ReceiveAsync<RunControl>(async m =>
        {
            var sender = Sender;
            if (!Authorized(m.Token, "ctl")) { sender.Tell(RunControlRelay.Reply(m, false, ClusterToken.Refused)); return; }
            if (string.IsNullOrEmpty(m.RunId)) { sender.Tell(RunControlRelay.Reply(m, false, "no run id given (--run RUN)")); return; }
            try { sender.Tell(await runs.Ask<RunControlReply>(m, timeout + TimeSpan.FromSeconds(5))); }
            catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
            {
                sender.Tell(RunControlRelay.Reply(m, false, $"run {m.RunId}: its entity did not answer within {(timeout + TimeSpan.FromSeconds(5)).TotalSeconds:F0} s (the cluster is forming, or its node is leaving): try again."));
            }
        });
        ReceiveAsync<SweepStatusQuery>(async m =>
        {
            var sender = Sender;
            if (!Authorized(m.Token, "status")) { sender.Tell(new SweepStatusReply { Found = false, Message = ClusterToken.Refused }); return; }
            try
            {
                var reply = await director.Ask<SweepStatusReply>(m, timeout);
                sender.Tell(new SweepStatusReply(reply) { RunRoot = runRoot });
            }
            catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
            {
                sender.Tell(new SweepStatusReply { Found = false, Message = $"the sweep director did not answer within {timeout.TotalSeconds:F0} s (the cluster is forming or has no majority): try again." });
            }
        });
        // Whatever else the wire could carry here (a bare string, an Identify's answer): not acted on.
        ReceiveAny(m => _log.Warning("Dropped a {0} from {1}: the sweep receptionist accepts only sweep requests with the cluster token",
            m.GetType().Name, Sender.Path));
    }

    private bool Authorized(string? token, string what)
    {
        if (ClusterToken.Matches(_token, token)) return true;
        _log.Warning("Refused a sweep {0} request from {1}: wrong or missing cluster token", what, Sender.Path.Address);
        return false;
    }

    private static SweepReply Refusal() => new() { Ok = false, Message = ClusterToken.Refused };

    private static async Task<SweepReply> Ask<T>(IActorRef director, object m, TimeSpan timeout, string what)
    {
        try { return await director.Ask<SweepReply>(m, timeout); }
        catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
        {
            // Not "nothing was done": the singleton proxy buffers the request until it finds the director and then
            // delivers it (see SweepNode.Start), so it may still be carried out. Submit and cancel are idempotent.
            return new SweepReply { Ok = false, Message = $"{what}: the sweep director did not answer within {timeout.TotalSeconds:F0} s (the cluster is forming or has no majority): " +
                                                          "the request may still be carried out once the director is reachable; check with `ect sweep status`, or send it again (the same submit or cancel twice changes nothing)." };
        }
    }

    public static Props Props(IActorRef director, IActorRef runs, string runRoot, string token) =>
        Akka.Actor.Props.Create(() => new SweepReceptionist(director, runs, runRoot, token));
}
