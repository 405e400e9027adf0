using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Event;
using Akka.Persistence;
using Ect.Actors.Cluster.Wire;
using Ect.Actors.Control;
using Ect.Actors.Persistence;
using Ect.Actors.Sweeps;

namespace Ect.Actors.Cluster;

/// <summary>
/// One run of a sweep as a sharded persistent entity (entity id = run id; persistence id ect-sweep-run-RUN_ID on the
/// shared journal). It trains the run as an `ect train RUN_ROOT/RUN_ID` child (<see cref="TrainChild"/>) once its
/// node's <see cref="SlotGate"/> grants a slot; the child resumes from the run's last checkpoint by itself. With
/// remember-entities on, an entity whose node died is started again on a surviving node, recovers RunAssigned from
/// the journal and trains on: the run's own directory lock (RunLock) makes a second concurrent trainer impossible, and
/// a child whose node died kills itself (it watches its parent). Journal: RunAssigned, then per child
/// RunAttemptStarted(node, attempt, pid) / RunAttemptEnded(exit code), RunCancelRequested, and RunOutcome at the end.
/// </summary>
public sealed class SweepRunEntity : ReceivePersistentActor, IWithTimers
{
    /// <summary>The shard region's type name.</summary>
    public const string TypeName = "ect-sweep-run";

    /// <summary>A child that fails this many times (not counting children lost with their node) ends the run as failed.</summary>
    public const int MaxFailures = 4;

    public sealed record NodeContext(string RunRoot, (string File, IReadOnlyList<string> Prefix) Ect, int Threads, string Node,
        IActorRef Slots, IActorRef Director, string Token)
    {
        // The token is a secret: keep it out of logs (records print every property by default).
        public override string ToString() => $"NodeContext {{ Node = {Node}, RunRoot = {RunRoot}, Threads = {Threads} }}";
    }

    private sealed record ChildExited(int Attempt, int ExitCode, bool Finished, double CpuSeconds);
    private sealed record Retry;

    private readonly NodeContext _node;
    private readonly string _runId;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    // State (changed only by applying events).
    private RunAssigned? _assigned;
    private int _attempts, _failures;
    private bool _cancelRequested;
    private string? _outcome;

    // This incarnation only.
    private TrainChild? _child;
    private bool _waitingForSlot, _holdingSlot;

    public ITimerScheduler Timers { get; set; } = null!;

    public SweepRunEntity(string runId, NodeContext node)
    {
        _runId = runId;
        _node = node;
        Recover<RunAssigned>(Apply);
        Recover<RunAttemptStarted>(Apply);
        Recover<RunAttemptEnded>(Apply);
        Recover<RunCancelRequested>(Apply);
        Recover<RunOutcome>(Apply);
        Recover<RecoveryCompleted>(_ => { if (_assigned is not null && _outcome is null) EnsureRunning(); });

        Command<StartRun>(s =>
        {
            if (_outcome is not null) { ReportEnd(); Passivate(); return; }
            if (_assigned is null) Persist(new RunAssigned { Sweep = s.Sweep, Run = s.Run }, e => { Apply(e); EnsureRunning(); });
            else EnsureRunning();
        });
        Command<CancelRun>(_ =>
        {
            if (_outcome is not null) { ReportEnd(); return; }
            if (_cancelRequested) return;
            Persist(new RunCancelRequested(), e =>
            {
                Apply(e);
                if (_child is not null) { _log.Info("{0}: cancel: asking its trainer to checkpoint and stop", _runId); _child.Terminate(); }
                else End("cancelled");
            });
        });
        Command<RunControl>(OnControl);
        Command<SlotGate.Granted>(_ => { _waitingForSlot = false; _holdingSlot = true; StartChild(); });
        Command<ChildExited>(OnChildExited);
        Command<Retry>(_ => EnsureRunning());
        Command<Status.Failure>(f => _log.Error(f.Cause, "{0}: {1}", _runId, f.Cause?.Message ?? "a failure"));
    }

    public override string PersistenceId => "ect-sweep-run-" + _runId;

    public static Props Props(string runId, NodeContext node) => Akka.Actor.Props.Create(() => new SweepRunEntity(runId, node));

    private void Apply(object e)
    {
        switch (e)
        {
            case RunAssigned a: _assigned = a; break;
            case RunAttemptStarted s: _attempts = Math.Max(_attempts, s.Attempt); break;
            case RunAttemptEnded x when x.ExitCode != 0: _failures++; break;
            case RunCancelRequested: _cancelRequested = true; break;
            case RunOutcome o: _outcome = o.Outcome; break;
        }
    }

    private string RunDir => Path.Combine(_node.RunRoot, _runId);

    private void EnsureRunning()
    {
        if (_assigned is null || _outcome is not null || _child is not null || _waitingForSlot) return;
        if (_cancelRequested) { End("cancelled"); return; }
        if (_holdingSlot) { StartChild(); return; }
        _waitingForSlot = true;
        _node.Slots.Tell(new SlotGate.Acquire());
    }

    private void StartChild()
    {
        if (_assigned is null || _outcome is not null || _child is not null || _cancelRequested) { ReleaseSlot(); if (_cancelRequested && _outcome is null) End("cancelled"); return; }
        if (Daemon.RunLock.IsHeld(RunDir))
        {
            // A trainer of this run still holds its directory (its node is leaving, or died a moment ago and the
            // trainer has not noticed yet): never a second one; look again shortly, keeping the slot.
            Console.WriteLine($"node {_node.Node}: run {_runId}: its run directory is locked by another trainer; waiting");
            Timers.StartSingleTimer("retry", new Retry(), TimeSpan.FromSeconds(2));
            return;
        }
        var attempt = _attempts + 1;
        TrainChild child;
        try { child = TrainChild.Start(_node.Ect, _assigned.Run.Configs, _assigned.Run.Sets, _node.Threads, RunDir); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception)
        {
            _log.Error("{0}: cannot start `ect train` in {1}: {2}", _runId, RunDir, e.Message);
            Persist(new RunAttemptEnded { Attempt = attempt, ExitCode = -1, EndedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() }, ev =>
            {
                Apply(ev);
                ReleaseSlot();
                AfterFailure(-1);
            });
            return;
        }
        _child = child;
        var self = Self;
        WaitForExit(child, attempt).PipeTo(self);
        Console.WriteLine($"node {_node.Node}: run {_runId}: attempt {attempt}, ect train pid {child.Pid}");
        Persist(new RunAttemptStarted { Node = _node.Node, Attempt = attempt, Pid = child.Pid, StartedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() }, e =>
        {
            Apply(e);
            _node.Director.Tell(new RunRunningReport { Sweep = _assigned.Sweep, RunId = _runId, Node = _node.Node, Attempt = attempt });
        });
    }

    private async Task<ChildExited> WaitForExit(TrainChild child, int attempt)
    {
        int code;
        double cpu;
        try { (code, cpu) = await child.WaitAsync().ConfigureAwait(false); }
        catch (Exception e)
        {
            Console.Error.WriteLine($"node {_node.Node}: run {_runId}: attempt {attempt}: waiting for its trainer failed: {e.Message}");
            (code, cpu) = (-1, 0);
        }
        return new ChildExited(attempt, code, code == 0 && Finished(), cpu);
    }

    private bool Finished()
    {
        try { return RunJournal.Events<Ect.Actors.Persistence.Events.RunFinished>(RunJournal.Read(RunDir)).Any(); }
        catch (Exception e)
        {
            Console.Error.WriteLine($"node {_node.Node}: run {_runId}: cannot read its journal in {RunDir}: {e.Message}");
            return false;
        }
    }

    private void OnChildExited(ChildExited x)
    {
        _child?.Dispose();
        _child = null;
        ReleaseSlot();
        Console.WriteLine($"node {_node.Node}: run {_runId}: attempt {x.Attempt} exited {x.ExitCode}{(x.Finished ? " (finished)" : "")}");
        Persist(new RunAttemptEnded { Attempt = x.Attempt, ExitCode = x.ExitCode, EndedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() }, e =>
        {
            Apply(e);
            if (x.Finished) End("finished");
            else if (_cancelRequested) End("cancelled");
            else AfterFailure(x.ExitCode);
        });
    }

    /// <summary>
    /// `ect ctl --run` through the cluster: a trainer's command goes to its own control endpoint (on this node, where the
    /// trainer runs) off the actor's thread; without a trainer, status is answered from the entity's state and any other
    /// command is refused, naming the phase.
    /// </summary>
    private void OnControl(RunControl m)
    {
        if (!ClusterToken.Matches(_node.Token, m.Token)) { Sender.Tell(RunControlRelay.Reply(m, false, ClusterToken.Refused)); return; }
        if (RunControlRelay.CommandOf(m) is not { } command) { Sender.Tell(RunControlRelay.Reply(m, false, "not a control command this node knows (a newer `ect ctl`?)")); return; }
        if (_assigned is null)
        {
            Sender.Tell(RunControlRelay.Reply(m, false, $"no run {_runId} has been started in the cluster (`ect sweep status NAME --cluster ...` lists a sweep's runs)."));
            // Started only by this request: forget it again (with remember-entities a stopped entity is not restarted).
            Passivate();
            return;
        }
        if (_child is not null)
        {
            RunControlRelay.ToTrainer(_runId, RunDir, command, TimeSpan.FromSeconds(10)).PipeTo(Sender);
            return;
        }
        var phase = _outcome ?? (_cancelRequested ? "cancelling" : _waitingForSlot ? "waiting for a slot" : "between attempts");
        var where = $"run {_runId} on {_node.Node}: {phase}, {_attempts} attempt(s), no trainer running";
        Sender.Tell(command is GetStatus
            ? RunControlRelay.Reply(m, true, $"{where} (`ect inspect {RunDir}` shows its checkpoints).")
            : RunControlRelay.Reply(m, false, $"{where}: nothing to {command.GetType().Name}."));
        if (_outcome is not null) Passivate();
    }

    private void AfterFailure(int exitCode)
    {
        if (_failures >= MaxFailures) { End($"failed (exit {exitCode}, {_failures} failures; see {Path.Combine(RunDir, "sweep-train.log")})"); return; }
        // A lock held by a trainer that is still ending (its node just died) or a passing error: try again shortly.
        Timers.StartSingleTimer("retry", new Retry(), TimeSpan.FromSeconds(2 * _failures));
    }

    private void End(string outcome)
    {
        if (_outcome is not null || _assigned is null) { Passivate(); return; }
        Persist(new RunOutcome { Sweep = _assigned.Sweep, RunId = _runId, Outcome = outcome }, e =>
        {
            Apply(e);
            ReportEnd();
            Passivate();
        });
    }

    private void ReportEnd()
    {
        if (_assigned is not null && _outcome is not null)
            _node.Director.Tell(new RunEndedReport { Sweep = _assigned.Sweep, RunId = _runId, Outcome = _outcome });
    }

    /// <summary>Stops this entity for good: with remember-entities, a passivated entity is forgotten (not restarted).</summary>
    private void Passivate() => Context.Parent.Tell(new Passivate(PoisonPill.Instance));

    private void ReleaseSlot()
    {
        if (!_holdingSlot) return;
        _holdingSlot = false;
        _node.Slots.Tell(new SlotGate.Release());
    }

    protected override void PreStart()
    {
        Console.WriteLine($"node {_node.Node}: run {_runId}: entity started");
        base.PreStart();
    }

    protected override void PostStop()
    {
        Console.WriteLine($"node {_node.Node}: run {_runId}: entity stopped{(_child is null ? "" : " (its trainer is asked to checkpoint and stop)")}");
        // Handed off (its node leaves) or stopped with its node: the child checkpoints and ends; the run goes on elsewhere.
        _child?.Terminate();
        base.PostStop();
    }
}
