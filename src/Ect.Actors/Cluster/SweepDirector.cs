using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Ect.Actors.Cluster.Wire;

namespace Ect.Actors.Cluster;

/// <summary>
/// The sweep director: a persistent cluster singleton (persistence id ect-sweep-director) that owns every submitted
/// sweep's queue. It releases runs, in the sweep's order and oldest sweep first, while the cluster has free slots
/// (the sum of the slots the nodes' <see cref="SlotGate"/>s report, less the runs released and not yet ended), by
/// sending StartRun to the run's sharded entity; every few seconds it sends StartRun again to every released run
/// that has not ended (idempotent in the entity), so a message lost with a dying node costs a few seconds, never a run.
/// A sweep submitted again with the same runs is accepted as is (nothing changes); with a run whose configuration
/// differs it is refused, naming the run, and nothing of it is recorded.
/// </summary>
public sealed class SweepDirector : ReceivePersistentActor, IWithTimers
{
    public const string PersistenceIdValue = "ect-sweep-director";

    /// <summary>A node that has not reported its slots for this long no longer counts.</summary>
    public static readonly TimeSpan NodeSilence = TimeSpan.FromSeconds(8);

    private sealed record Tick;

    private sealed class Sweep(SweepSubmitted submitted)
    {
        public SweepSubmitted Submitted { get; } = submitted;
        public HashSet<string> Released { get; } = new();
        public Dictionary<string, string> Outcomes { get; } = new();
        public bool Cancelled { get; set; }
    }

    private readonly IActorRef _runs;
    private readonly string _token;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly List<Sweep> _sweeps = new();
    private readonly Dictionary<string, (int Slots, int Busy, DateTime Seen)> _nodes = new();
    private readonly Dictionary<string, (string Node, int Attempt)> _where = new();

    public ITimerScheduler Timers { get; set; } = null!;

    public SweepDirector(IActorRef runs, string token)
    {
        if (string.IsNullOrEmpty(token)) throw new ArgumentException("The cluster token may not be empty.", nameof(token));
        _runs = runs;
        _token = token;
        Recover<SweepSubmitted>(Apply);
        Recover<RunReleased>(Apply);
        Recover<RunOutcome>(Apply);
        Recover<SweepCancelled>(Apply);
        Recover<RecoveryCompleted>(_ => Timers.StartPeriodicTimer("tick", new Tick(), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3)));

        // Client requests reach the director through a node's receptionist, which checks the token first; checked here
        // again because the director's path is reachable by actor selection (the singleton proxy finds it so).
        Command<SubmitSweep>(m => { if (Authorized(m.Token, "submit")) OnSubmit(m); else Sender.Tell(new SweepReply { Ok = false, Message = ClusterToken.Refused }); });
        Command<SweepStatusQuery>(q => Sender.Tell(Authorized(q.Token, "status") ? Status(q.Name) : new SweepStatusReply { Found = false, Message = ClusterToken.Refused }));
        Command<CancelSweep>(m => { if (Authorized(m.Token, "cancel")) OnCancel(m); else Sender.Tell(new SweepReply { Ok = false, Message = ClusterToken.Refused }); });
        Command<NodeSlots>(n => { _nodes[n.Node] = (n.Slots, n.Busy, DateTime.UtcNow); Release(); });
        Command<RunRunningReport>(r => _where[r.RunId] = (r.Node, r.Attempt));
        Command<RunEndedReport>(r =>
        {
            var sweep = Find(r.Sweep);
            if (sweep is null || sweep.Outcomes.ContainsKey(r.RunId)) return;
            Persist(new RunOutcome { Sweep = r.Sweep, RunId = r.RunId, Outcome = r.Outcome }, e => { Apply(e); Release(); });
        });
        Command<Tick>(_ =>
        {
            foreach (var stale in _nodes.Where(kv => DateTime.UtcNow - kv.Value.Seen > NodeSilence).Select(kv => kv.Key).ToList()) _nodes.Remove(stale);
            foreach (var s in _sweeps)
                foreach (var run in s.Submitted.Runs.Where(r => s.Released.Contains(r.RunId) && !s.Outcomes.ContainsKey(r.RunId)))
                {
                    _runs.Tell(new StartRun { Sweep = s.Submitted.Name, Run = run });
                    if (s.Cancelled) _runs.Tell(new CancelRun { RunId = run.RunId });
                }
            Release();
        });
    }

    public override string PersistenceId => PersistenceIdValue;

    public static Props Props(IActorRef runs, string token) => Akka.Actor.Props.Create(() => new SweepDirector(runs, token));

    private bool Authorized(string? token, string what)
    {
        if (ClusterToken.Matches(_token, token)) return true;
        _log.Warning("Refused a sweep {0} request from {1}: wrong or missing cluster token", what, Sender.Path.Address);
        return false;
    }

    private Sweep? Find(string name) => _sweeps.FirstOrDefault(s => s.Submitted.Name == name);

    private void Apply(object e)
    {
        switch (e)
        {
            case SweepSubmitted s: _sweeps.Add(new Sweep(s)); break;
            case RunReleased r: Find(r.Sweep)?.Released.Add(r.RunId); break;
            case RunOutcome o: Find(o.Sweep)?.Outcomes.TryAdd(o.RunId, o.Outcome); break;
            case SweepCancelled c: if (Find(c.Name) is { } sweep) sweep.Cancelled = true; break;
        }
    }

    private void OnSubmit(SubmitSweep submit)
    {
        var s = submit.Sweep;
        if (s is null || s.Runs.Count == 0) { Sender.Tell(new SweepReply { Ok = false, Message = "a sweep without runs: nothing submitted." }); return; }
        if (Find(s.Name) is { } old)
        {
            var oldRuns = old.Submitted.Runs.ToDictionary(r => r.RunId);
            foreach (var r in s.Runs)
                if (oldRuns.TryGetValue(r.RunId, out var o) && (!o.Configs.SequenceEqual(r.Configs) || !o.Sets.SequenceEqual(r.Sets)))
                {
                    Sender.Tell(new SweepReply { Ok = false, Message =
                        $"sweep {s.Name} ({s.SpecPath}): run {r.RunId} exists in the cluster with another configuration " +
                        $"({string.Join(" ", o.Sets)}) than this spec gives ({string.Join(" ", r.Sets)}): rename the sweep. Nothing was submitted." });
                    return;
                }
            if (s.Runs.Count != old.Submitted.Runs.Count || s.Runs.Any(r => !oldRuns.ContainsKey(r.RunId)))
            {
                Sender.Tell(new SweepReply { Ok = false, Message =
                    $"sweep {s.Name} ({s.SpecPath}): a sweep of this name was submitted with other runs ({old.Submitted.Runs.Count} runs from {old.Submitted.SpecPath}): rename the sweep. Nothing was submitted." });
                return;
            }
            Sender.Tell(new SweepReply { Ok = true, Message = $"sweep {s.Name}: already submitted ({old.Outcomes.Count} of {old.Submitted.Runs.Count} runs ended); nothing changed." });
            return;
        }
        var sender = Sender;
        Persist(s, e =>
        {
            Apply(e);
            _log.Info("sweep {0}: submitted, {1} runs", s.Name, s.Runs.Count);
            sender.Tell(new SweepReply { Ok = true, Message = $"sweep {s.Name}: submitted, {s.Runs.Count} runs." });
            Release();
        });
    }

    private void OnCancel(CancelSweep c)
    {
        var sweep = Find(c.Name);
        if (sweep is null) { Sender.Tell(new SweepReply { Ok = false, Message = $"no sweep named \"{c.Name}\" in the cluster (known: {string.Join(", ", _sweeps.Select(s => s.Submitted.Name))})." }); return; }
        if (sweep.Cancelled) { Sender.Tell(new SweepReply { Ok = true, Message = $"sweep {c.Name}: already cancelled." }); return; }
        var sender = Sender;
        Persist(new SweepCancelled { Name = c.Name }, e =>
        {
            Apply(e);
            var running = sweep.Released.Where(r => !sweep.Outcomes.ContainsKey(r)).ToList();
            foreach (var r in running) _runs.Tell(new CancelRun { RunId = r });
            sender.Tell(new SweepReply { Ok = true, Message =
                $"sweep {c.Name}: cancelled; {running.Count} running run(s) asked to checkpoint and stop, {sweep.Submitted.Runs.Count - sweep.Released.Count} never started." });
        });
    }

    /// <summary>Releases pending runs while the cluster has free slots.</summary>
    private void Release()
    {
        int capacity = _nodes.Values.Sum(n => n.Slots) - _sweeps.Sum(s => s.Released.Count(r => !s.Outcomes.ContainsKey(r)));
        if (capacity <= 0) return;
        var next = _sweeps.Where(s => !s.Cancelled)
            .SelectMany(s => s.Submitted.Runs.Where(r => !s.Released.Contains(r.RunId)).Select(r => (Sweep: s, Run: r)))
            .Take(capacity).ToList();
        if (next.Count == 0) return;
        PersistAll(next.Select(n => new RunReleased { Sweep = n.Sweep.Submitted.Name, RunId = n.Run.RunId }), e =>
        {
            Apply(e);
            var run = Find(e.Sweep)!.Submitted.Runs.First(r => r.RunId == e.RunId);
            _runs.Tell(new StartRun { Sweep = e.Sweep, Run = run });
        });
    }

    private SweepStatusReply Status(string name)
    {
        var reply = new SweepStatusReply { Name = name };
        foreach (var (node, n) in _nodes) reply.Nodes.Add(new NodeSlots { Node = node, Slots = n.Slots, Busy = n.Busy });
        var sweep = Find(name);
        if (sweep is null)
        {
            reply.Message = $"no sweep named \"{name}\" in the cluster (known: {string.Join(", ", _sweeps.Select(s => s.Submitted.Name))}).";
            return reply;
        }
        reply.Found = true;
        reply.SpecPath = sweep.Submitted.SpecPath;
        reply.Metric = sweep.Submitted.Metric;
        reply.Cancelled = sweep.Cancelled;
        foreach (var r in sweep.Submitted.Runs)
        {
            var phase = sweep.Outcomes.TryGetValue(r.RunId, out var o) ? o : sweep.Released.Contains(r.RunId) ? (_where.ContainsKey(r.RunId) ? "running" : "released") : sweep.Cancelled ? "cancelled" : "pending";
            var (node, attempt) = _where.TryGetValue(r.RunId, out var w) ? w : ("", 0);
            reply.Runs.Add(new RunStatusRow { RunId = r.RunId, Phase = phase, Node = node, Attempts = attempt });
        }
        return reply;
    }
}
