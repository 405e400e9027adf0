using Akka.Actor;
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

    public SweepReceptionist(IActorRef director, string runRoot)
    {
        var timeout = TimeSpan.FromSeconds(15);
        ReceiveAsync<SubmitSweep>(async m => Sender.Tell(await Ask<SweepReply>(director, m, timeout, "submit")));
        ReceiveAsync<CancelSweep>(async m => Sender.Tell(await Ask<SweepReply>(director, m, timeout, "cancel")));
        ReceiveAsync<SweepStatusQuery>(async m =>
        {
            var sender = Sender;
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
    }

    private static async Task<SweepReply> Ask<T>(IActorRef director, object m, TimeSpan timeout, string what)
    {
        try { return await director.Ask<SweepReply>(m, timeout); }
        catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
        {
            return new SweepReply { Ok = false, Message = $"{what}: the sweep director did not answer within {timeout.TotalSeconds:F0} s (the cluster is forming or has no majority): nothing was done; try again." };
        }
    }

    public static Props Props(IActorRef director, string runRoot) => Akka.Actor.Props.Create(() => new SweepReceptionist(director, runRoot));
}
