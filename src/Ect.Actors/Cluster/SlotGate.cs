using Akka.Actor;
using Ect.Actors.Cluster.Wire;

namespace Ect.Actors.Cluster;

/// <summary>
/// A node's training slots (/user/slots): at most N run entities on this node have an `ect train` child at once.
/// An entity asks for a slot and waits, first come first served; a slot comes back when the entity says so or stops
/// (watched: an entity that crashes or is handed off cannot keep one). Every two seconds the gate tells the sweep
/// director (through the singleton proxy) how many slots this node has and how many are busy: that is what the
/// director releases runs against. Local messages only (never on the wire).
/// </summary>
public sealed class SlotGate : ReceiveActor, IWithTimers
{
    public sealed record Acquire;
    public sealed record Granted;
    public sealed record Release;
    private sealed record Tick;

    private readonly int _slots;
    private readonly HashSet<IActorRef> _holders = new();
    private readonly LinkedList<IActorRef> _waiting = new();

    public ITimerScheduler Timers { get; set; } = null!;

    public SlotGate(int slots, string node, IActorRef director)
    {
        _slots = slots;
        Receive<Acquire>(_ =>
        {
            if (_holders.Contains(Sender) || _waiting.Contains(Sender)) return;
            Context.Watch(Sender);
            _waiting.AddLast(Sender);
            Grant();
        });
        Receive<Release>(_ => Free(Sender));
        Receive<Terminated>(t => Free(t.ActorRef));
        Receive<Tick>(_ => director.Tell(Report(node)));
        Receive<SlotQuery>(_ => Sender.Tell(Report(node)));
        Timers.StartPeriodicTimer("report", new Tick(), TimeSpan.Zero, TimeSpan.FromSeconds(2));
    }

    public static Props Props(int slots, string node, IActorRef director) => Akka.Actor.Props.Create(() => new SlotGate(slots, node, director));

    private NodeSlots Report(string node) => new() { Node = node, Slots = _slots, Busy = _holders.Count, Waiting = _waiting.Count };

    private void Free(IActorRef who)
    {
        _holders.Remove(who);
        _waiting.Remove(who);
        Context.Unwatch(who);
        Grant();
    }

    private void Grant()
    {
        while (_holders.Count < _slots && _waiting.First is { } first)
        {
            _waiting.RemoveFirst();
            _holders.Add(first.Value);
            first.Value.Tell(new Granted());
        }
    }
}
