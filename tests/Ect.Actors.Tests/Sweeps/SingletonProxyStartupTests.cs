using Akka.Actor;
using Akka.Cluster.Tools.Singleton;
using Akka.TestKit.Xunit2;
using Ect.Actors.Cluster;
using Xunit;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// Issue 19: the "ClusterSingletonProxy failed to find an associated singleton" warning every node logs at start-up is
/// not a lost message. As `ect node` does (SweepNode.Start), the proxy is created before the node is a member and
/// before the singleton exists; what is sent to it meanwhile (a sweep submitted early, the slot gate's first reports)
/// is buffered and delivered, in order, to the singleton once the node has joined and the manager has started it.
/// </summary>
public sealed class SingletonProxyStartupTests() : TestKit(ClusterHocon.Serialization.WithFallback(Akka.Configuration.ConfigurationFactory.ParseString("""
    akka.actor.provider = cluster
    akka.remote.dot-netty.tcp { hostname = "127.0.0.1", port = 0 }
    akka.cluster.singleton.hand-over-retry-interval = 1s
    akka.loglevel = WARNING
    """)))
{
    private sealed class ForwardTo : ReceiveActor
    {
        public ForwardTo(IActorRef target) => ReceiveAny(m => target.Tell(m));
    }

    [Fact]
    public void Messages_sent_through_the_proxy_before_the_node_joined_and_the_singleton_existed_reach_the_singleton_in_order()
    {
        var probe = CreateTestProbe();
        var proxy = Sys.ActorOf(ClusterSingletonProxy.Props($"/user/{SweepNode.DirectorName}", ClusterSingletonProxySettings.Create(Sys)),
            SweepNode.DirectorName + "-proxy");
        var early = Enumerable.Range(0, 5).Select(i => $"early-{i}").ToList();
        foreach (var m in early) proxy.Tell(m);
        probe.ExpectNoMsg(TimeSpan.FromSeconds(1)); // no singleton anywhere yet: nothing can have been delivered

        var cluster = Akka.Cluster.Cluster.Get(Sys);
        cluster.Join(cluster.SelfAddress);
        Sys.ActorOf(ClusterSingletonManager.Props(Props.Create(() => new ForwardTo(probe.Ref)), PoisonPill.Instance,
            ClusterSingletonManagerSettings.Create(Sys)), SweepNode.DirectorName);

        foreach (var m in early) probe.ExpectMsg(m, TimeSpan.FromSeconds(30));
        proxy.Tell("late");
        probe.ExpectMsg("late", TimeSpan.FromSeconds(10));
    }
}
