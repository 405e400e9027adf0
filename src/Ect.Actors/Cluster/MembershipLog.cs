using Akka.Actor;
using Akka.Cluster;

namespace Ect.Actors.Cluster;

/// <summary>
/// Prints every membership change a node sees ("node SELF: member ADDRESS joining|up|leaving|exiting|removed (N members)")
/// and every change of reachability ("node SELF: member ADDRESS unreachable|reachable again", as the cluster's gossip
/// aggregates it: some member's failure detector stopped or started hearing it) on the node's standard output: who is
/// in the cluster is a security fact (with TLS, only holders of the cluster's certificate), and an operator (or
/// ClusterMembershipTlsTests, ClusterRestartStressTests) reads it from the node's log. Prints only: it acts on nothing.
/// </summary>
public sealed class MembershipLog : ReceiveActor
{
    public const string Name = "membership-log";

    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly TextWriter _out;
    private readonly HashSet<UniqueAddress> _members = [];

    public static Props Props(TextWriter output) => Akka.Actor.Props.Create(() => new MembershipLog(output));

    public MembershipLog(TextWriter output)
    {
        _out = output;
        // Counted from the events themselves: Cluster.State lags behind the event being handled.
        Receive<ClusterEvent.IMemberEvent>(e =>
        {
            if (e is ClusterEvent.MemberRemoved) _members.Remove(e.Member.UniqueAddress);
            else _members.Add(e.Member.UniqueAddress);
            _out.WriteLine($"node {_cluster.SelfAddress}: member {e.Member.Address} {Describe(e)} ({_members.Count} members)");
        });
        // Reachability is what the split-brain resolver decides on: an operator reading why a node was downed needs it.
        Receive<ClusterEvent.UnreachableMember>(e => _out.WriteLine($"node {_cluster.SelfAddress}: member {e.Member.Address} unreachable"));
        Receive<ClusterEvent.ReachableMember>(e => _out.WriteLine($"node {_cluster.SelfAddress}: member {e.Member.Address} reachable again"));
        Receive<ClusterEvent.CurrentClusterState>(_ => { });
    }

    private static string Describe(ClusterEvent.IMemberEvent e) => e switch
    {
        ClusterEvent.MemberJoined => "joining",
        ClusterEvent.MemberUp => "up",
        ClusterEvent.MemberLeft => "leaving",
        ClusterEvent.MemberExited => "exiting",
        ClusterEvent.MemberRemoved => "removed",
        _ => e.Member.Status.ToString().ToLowerInvariant(),
    };

    protected override void PreStart() =>
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));

    protected override void PostStop() => _cluster.Unsubscribe(Self);
}
