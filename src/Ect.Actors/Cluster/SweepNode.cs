using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Cluster.Tools.Singleton;
using Ect.Actors.Cluster.Wire;

namespace Ect.Actors.Cluster;

/// <summary>
/// What `ect node` starts in its cluster ActorSystem: the run entities' shard region, the sweep director singleton
/// (and its proxy), this node's slot gate and the receptionist the CLI talks to.
/// </summary>
public static class SweepNode
{
    public const string DirectorName = "sweep-director";

    /// <summary>Run id from the StartRun / CancelRun messages; shards by hash (Akka's HashCodeMessageExtractor).</summary>
    private sealed class RunIdExtractor() : HashCodeMessageExtractor(ClusterHocon.ShardCount)
    {
        public override string? EntityId(object message) => message switch
        {
            StartRun s => s.Run.RunId,
            CancelRun c => c.RunId,
            RunControl r when r.RunId.Length > 0 => r.RunId,
            _ => null,
        };
    }

    public static void Start(ActorSystem system, string runRoot, int slots, int threads, (string File, IReadOnlyList<string> Prefix) ect, string token)
    {
        var node = Akka.Cluster.Cluster.Get(system).SelfAddress.ToString();
        var sharding = ClusterSharding.Get(system);
        // The proxy logs "ClusterSingletonProxy failed to find an associated singleton ... after 30 seconds" once at
        // start-up: Akka.Cluster.Tools 1.5's ClusterSingletonProxy starts its identification-failure timer with an
        // initial delay of zero, so the first tick fires as the proxy starts, before it has tried anything (a real
        // failure repeats every 30 s). Nothing is lost meanwhile: until the director is identified the proxy buffers
        // what is sent to it (akka.cluster.singleton-proxy.buffer-size, 1000 by default; the oldest is dropped only
        // beyond that, i.e. after ~30 minutes of this node's 2-second slot reports without a director) and delivers it
        // in order once found (SingletonProxyStartupTests). A request the receptionist timed out on may therefore still
        // be carried out: its answer says so (submit and cancel are idempotent; StartRun and the reports are repeated).
        var directorProxy = system.ActorOf(ClusterSingletonProxy.Props($"/user/{DirectorName}", ClusterSingletonProxySettings.Create(system)), DirectorName + "-proxy");
        var gate = system.ActorOf(SlotGate.Props(slots, node, directorProxy), "slots");
        var context = new SweepRunEntity.NodeContext(runRoot, ect, threads, node, gate, directorProxy, token);
        var region = sharding.Start(SweepRunEntity.TypeName, id => SweepRunEntity.Props(id, context), ClusterShardingSettings.Create(system), new RunIdExtractor(),
            new FreeSlotAllocation(), PoisonPill.Instance);
        system.ActorOf(ClusterSingletonManager.Props(SweepDirector.Props(region, token), PoisonPill.Instance, ClusterSingletonManagerSettings.Create(system)), DirectorName);
        system.ActorOf(SweepReceptionist.Props(directorProxy, region, runRoot, token), SweepReceptionist.Name);
    }
}
