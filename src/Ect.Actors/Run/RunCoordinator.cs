using Ect.Actors.Checkpoints;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.Persistence;
using Ect.Actors.Configuration;
using Ect.Actors.Control;
using Ect.Actors.Engine;
using Ect.Actors.Persistence.Events;
using Google.Protobuf;

namespace Ect.Actors.Run;

/// <summary>How a daemon's run ended (the process exit code follows it).</summary>
public sealed record RunOutcome(int ExitCode, string Message, long Step);

/// <summary>Asks the coordinator to stop the run (SIGTERM, Ctrl-C): checkpoint, record, exit 0.</summary>
public sealed record StopRequested(string Reason);

/// <summary>Where the coordinator's inputs come from (the daemon fills it; tests use fakes).</summary>
public sealed record CoordinatorSetup(
    Config CliConfig,
    string RunDir,
    EngineFactory EngineFactory,
    IObserver<TrainingProgress> Statistics,
    IObservable<TrainingProgress> SampledStatistics,
    TaskCompletionSource<RunOutcome> Completion,
    string PersistenceId = "ect-run",
    Action<RunState>? OnRecovered = null,
    IReadOnlySet<string>? ExplicitKeys = null,
    // Who the run is (run.json; the daemon passes its PersistenceId too) and how the journal is named in messages.
    RunIdentity? Identity = null,
    string Journal = "the journal");

/// <summary>
/// The run coordinator: a persistent actor that owns the run's state (event sourcing, protobuf events,
/// snapshots), starts the trainer from the last committed checkpoint, journals checkpoint commits,
/// schedule changes, evaluations and user commands (idempotent by key), and rolls back failed steps.
/// </summary>
public sealed partial class RunCoordinator : ReceivePersistentActor
{
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly CoordinatorSetup _setup;
    // The run's journaled state (changed only by RunState.Apply) and what is derived from it.
    private RunState _state = new();
    private Config _config = null!;
    private RunSettings _settings = null!;
    private long _eventsSinceSnapshot;
    // The actors this coordinator started, and which trainer incarnation is current (RunCoordinator.Behaviours.cs
    // holds the phase of the run: the behaviour the coordinator is in, not flags).
    private IActorRef _checkpointer = ActorRefs.Nobody, _evaluators = ActorRefs.Nobody, _trainer = ActorRefs.Nobody;
    private int _generation;
    private TrainingProgress? _lastStats;
    /// <summary>Final evaluations asked of the evaluators and not yet answered; null until the trainer asks for them.</summary>
    private int? _finalEvaluationsOutstanding;
    private readonly Dictionary<string, List<IActorRef>> _inFlight = new();
    private IDisposable? _statsSubscription;

    public override string PersistenceId => _setup.PersistenceId;

    public static Props Props(CoordinatorSetup setup) => Akka.Actor.Props.Create(() => new RunCoordinator(setup));

    public RunCoordinator(CoordinatorSetup setup)
    {
        _setup = setup;
        Recovering();
        Starting();
    }

    private bool Current(int generation) => generation == _generation;

    protected override void OnReplaySuccess()
    {
        base.OnReplaySuccess();
        _setup.OnRecovered?.Invoke(_state);
        _behaviour = nameof(Starting); // the constructor registered its handlers
        Self.Tell(new Begin());
    }

    private sealed record Begin;

    /// <summary>
    /// Starting, in order: the run directory and the journal agree (RunCoordinator.Identity.cs), a finished run is
    /// lengthened or refused (RunCoordinator.Extension.cs), ect.network.init is checked (off the actor's thread: an
    /// InitChecked message comes back), then the run starts or resumes. Each step may journal first and go on after.
    /// </summary>
    private void OnBegin() => AgreeOnRunDirectory(() => ExtendIfFinished(() => CheckInit(StartOrResume)));

    private void StartOrResume()
    {
        if (!_state.Started)
        {
            _config = _setup.CliConfig;
            var started = new RunStarted
            {
                RunId = _setup.Identity?.Name ?? Path.GetFileName(Path.GetFullPath(_setup.RunDir).TrimEnd('/')),
                RunUuid = _setup.Identity?.Id ?? "",
                RunDir = RunIdentity.FullPath(_setup.RunDir),
                Host = Environment.MachineName,
                ConfigHocon = EctConfiguration.Render(_config),
                StartedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
                ProgramVersion = typeof(RunCoordinator).Assembly.GetName().Version?.ToString() ?? "",
            };
            // The first phase is journaled too (later phases are journaled by the trainer at their step boundary).
            PersistEvent(started, _ => PersistEvent(new PhaseChanged { Phase = Phases.Pretrain, Step = 0 }, _ => Initialize()));
            return;
        }
        _config = EctConfiguration.FromJournal(_state.ConfigHocon);
        // How the run is shown and reached, and the fake engine's timing knobs, follow the new command line.
        foreach (var k in EctConfiguration.LeafKeys(_setup.CliConfig).Where(RestartMutable))
            _config = ConfigurationFactory.ParseString($"{k} = {EctConfiguration.Inline(_setup.CliConfig.GetValue(k))}").WithFallback(_config);
        // A changed step cap and an explicitly given data location are accepted and journaled (RestartChanges);
        // every other difference is reported and ignored: the run continues as it was configured.
        var restartChanges = RestartChanges();
        var effective = EffectiveConfig();
        var diffs = EctConfiguration.LeafKeys(_setup.CliConfig)
            .Where(k => k != "ect.run.max-steps" && !RestartMutable(k) && restartChanges.All(c => c.Key != k) && (_setup.ExplicitKeys?.Contains(k) ?? true))
            .Where(k => EctConfiguration.Inline(_setup.CliConfig.GetValue(k)) != EctConfiguration.Inline(effective.GetValue(k)))
            .ToList();
        if (diffs.Count > 0)
            _log.Warning("The run continues with its recorded configuration; ignored differences: {0}. {1}", string.Join(", ", diffs), ResumeRule);
        PersistInOrder(restartChanges, ResumeWithReverts);
    }

    private static bool RestartMutable(string key) =>
        key.StartsWith("ect.display.", StringComparison.Ordinal) || key.StartsWith("ect.control.", StringComparison.Ordinal)
        || key is "ect.fake.step-ms" or "ect.fake.write-ms" or "ect.fake.eval-ms" or RevertCommandsKey
        || key is "ect.checkpoint.write-attempts" or "ect.checkpoint.write-retry-delay-ms" or "ect.run.stop-timeout-seconds";

    private Config EffectiveConfig()
    {
        var c = _config;
        foreach (var ch in _state.ConfigChanges) c = EctConfiguration.ParseSet($"{ch.Key}={ch.Value}").WithFallback(c);
        return c;
    }

    private void Initialize()
    {
        if (!WorldSizeRecorded(Initialize)) return; // RunCoordinator.Distributed.cs
        _settings = RunSettings.From(EffectiveConfig(), checkData: false);
        _checkpointer = Context.ActorOf(Checkpointer.Props(_setup.RunDir, _settings.CheckpointWrite), "checkpointer");
        _evaluators = Context.ActorOf(EvaluationSupervisor.Props(_settings.Evaluation.Evaluators, _setup.RunDir, _settings.DataPath, Self), "evaluators");
        Context.Watch(_evaluators);
        var self = Self;
        _statsSubscription = _setup.SampledStatistics.Subscribe(s => self.Tell(new StatsSample(s)));
        StartTrainer();
    }

    /// <summary>A trainer for the next generation, from the resume point; the coordinator trains (or stays paused).</summary>
    private void StartTrainer()
    {
        _generation++;
        _finalEvaluationsOutstanding = null;
        var refused = new List<(long Step, string Reason)>();
        var resume = ResumePoint(refused);
        _trainer = Context.ActorOf(TrainerActor.Props(_config, _setup.RunDir, _setup.EngineFactory, _checkpointer, _setup.Statistics,
            _settings.Evaluation.Evaluators.Count), $"trainer-{_generation}");
        Context.Watch(_trainer);
        _trainer.Tell(new StartTraining(resume));
        if (_stopReason != null) _trainer.Tell(new StopTraining(_stopReason));
        // A refused checkpoint file is a decision too: journal it.
        foreach (var (step, reason) in refused)
            PersistEvent(new RolledBack { FromStep = step, ToStep = resume.Step, Reason = reason }, _ => { });
        if (_state.Paused) Transition(nameof(Paused), Paused); else Transition(nameof(Training), Training);
    }

    /// <summary>The last committed checkpoint whose file is intact (hash matches the journal); older ones if not.</summary>
    private ResumeInfo ResumePoint(List<(long Step, string Reason)> refused)
    {
        var changes = LiveChanges.Effective(_state.ConfigChanges).Select(c => (c.Step, c.Key, c.Value)).ToList();
        var stages = _state.UserStages.Select(u => (u.Step, u.Stage)).ToList();
        for (int i = _state.Checkpoints.Count - 1; i >= 0; i--)
        {
            var c = _state.Checkpoints[i];
            var path = Path.Combine(_setup.RunDir, c.Path);
            if (!File.Exists(path))
            {
                // Pruned files are expected to be gone; a checkpoint the prune keeps was deleted by someone: say so, and
                // journal the fall-back like a refused file.
                if (PrunedOnPurpose(i)) continue;
                _log.Error("Checkpoint {0} (step {1}) is missing: it was deleted outside the run; falling back to an older checkpoint", path, c.Step);
                refused.Add((c.Step, $"checkpoint {c.Path} is missing (deleted outside the run)"));
                continue;
            }
            var sha = Checkpointer.Sha256File(path);
            if (sha != c.Sha256)
            {
                _log.Error("Checkpoint {0} refused: SHA-256 {1} does not match the journal's {2}", c.Path, sha, c.Sha256);
                refused.Add((c.Step, $"checkpoint {c.Path} refused: its SHA-256 {sha} does not match the journal's {c.Sha256}"));
                continue;
            }
            return new ResumeInfo(_generation, path, c.Step, c.Phase, c.Stage, changes, stages, _state.Paused, RunConfigDigest(_state), _setup.Identity);
        }
        if (_state.Checkpoints.Count > 0)
            _log.Error("No intact checkpoint: the run starts again from step 0");
        // Pretrain first; the trainer's first step boundary moves to tuning (and journals it) when pretrain.steps is 0.
        return new ResumeInfo(_generation, null, 0, Phases.Pretrain, 0, changes, stages, _state.Paused, RunConfigDigest(_state), _setup.Identity);
    }

    /// <summary>Whether Prune deletes the i-th committed checkpoint (older than the newest keep-last, not a milestone).</summary>
    private bool PrunedOnPurpose(int i) =>
        !_state.Checkpoints[i].Milestone && _state.Checkpoints.Count(c => c.Step > _state.Checkpoints[i].Step) >= _settings.KeepLast;

    /// <param name="then">What the behaviour does once the checkpoint is journaled (Halting: try to finish).</param>
    private void OnCheckpointWritten(CheckpointWritten m, Action then)
    {
        var existing = _state.Checkpoints.FirstOrDefault(c => c.Step == m.Step);
        if (existing != null && existing.Sha256 == m.Sha256) { then(); return; } // recomputed after a resume: same bits
        if (existing != null)
            _log.Error("Checkpoint at step {0} recomputed with different bits ({1} vs {2}): determinism broken", m.Step, m.Sha256, existing.Sha256);
        var milestone = _settings.MilestoneEvery > 0 && m.Step % _settings.MilestoneEvery == 0;
        PersistEvent(new CheckpointCommitted
        {
            Path = m.RelativePath, Step = m.Step, Kimg = m.Kimg, Sha256 = m.Sha256, Phase = m.Phase, Stage = m.Stage, Milestone = milestone,
        }, _ =>
        {
            Prune();
            then();
        });
    }

    private void Prune()
    {
        var keepLast = RunSettings.From(EffectiveConfig(), checkData: false).KeepLast;
        var ordered = _state.Checkpoints.OrderByDescending(c => c.Step).ToList();
        var delete = ordered.Skip(keepLast).Where(c => !c.Milestone).Select(c => c.Path)
            .Where(p => File.Exists(Path.Combine(_setup.RunDir, p))).ToList();
        if (delete.Count > 0) _checkpointer.Tell(new DeleteCheckpoints(delete));
    }

    private void OnEvaluationDone(EvaluationDone m, Action then)
    {
        var ev = new EvaluationRecorded { Evaluator = m.Evaluator, Step = m.Step };
        ev.Files.AddRange(m.Files);
        foreach (var (k, v) in m.Metrics) ev.Metrics[k] = v;
        void After() { if (m.Final) { _finalEvaluationsOutstanding--; then(); } }
        if (_state.Evaluations.Any(e => e.Evaluator == m.Evaluator && e.Step == m.Step)) { After(); return; }
        PersistEvent(ev, _ => After());
    }

    private void OnEvaluationFailed(EvaluationFailed m, Action then)
    {
        _log.Warning("Evaluator {0} failed at step {1}: {2}", m.Evaluator, m.Step, m.Reason);
        if (m.Final) { _finalEvaluationsOutstanding--; then(); }
    }

    /// <summary>
    /// Halting: ends the run once the trainer's final checkpoint (and, for a finished run, its final evaluations) are
    /// journaled: RunFinished, or RunInterrupted for a stop or a step cap. Runs after every event that may be the last.
    /// </summary>
    private void TryFinish(TrainingHalted h)
    {
        // The final checkpoint first (the trainer writes one at its halt step, step 0 included, unless it resumed there).
        if (_state.LastCheckpoint?.Step != h.Step) return;
        if (h.Finished)
        {
            if (_finalEvaluationsOutstanding is not { } outstanding) return; // the trainer's final request comes first
            var finalPhase = $"phase:{Phases.FinalEvaluation}:{h.Step}";
            if (!_state.ScheduleEvents.Contains(finalPhase))
            {
                PersistOnce(finalPhase, new PhaseChanged { Phase = Phases.FinalEvaluation, Step = h.Step }, () => TryFinish(h));
                return;
            }
            if (outstanding > 0) return;
            var kimg = h.Step * (double)_settings.BatchSize / 1000;
            Transition(nameof(Ending), Ending);
            PersistEvent(new RunFinished { Step = h.Step, Kimg = kimg, WeightsSha256 = h.WeightsSha256, EmaSha256 = h.EmaSha256 },
                _ => Complete(new RunOutcome(0, $"Run finished at step {h.Step} ({kimg:F1} kimg); weights sha256 {h.WeightsSha256}, ema sha256 {h.EmaSha256}.", h.Step)));
        }
        else
        {
            Transition(nameof(Ending), Ending);
            PersistEvent(new RunInterrupted { Step = h.Step, Reason = h.Reason },
                _ => Complete(new RunOutcome(0, $"Run stopped at step {h.Step} ({h.Reason}); `ect train` on the same run directory continues it.", h.Step)));
        }
    }

    private string? _stopReason;

    private void StopTrainer(string reason)
    {
        if (_behaviour == nameof(Done)) return;
        _stopReason ??= reason; // also for a trainer started later (a stop during recovery or a rollback)
        _trainer.Tell(new StopTraining(reason));
    }

    /// <summary>Hands the outcome to `ect train`: the run is Done.</summary>
    private void Complete(RunOutcome outcome)
    {
        if (_behaviour == nameof(Done)) return;
        Transition(nameof(Done), Done);
        _statsSubscription?.Dispose();
        _setup.Completion.TrySetResult(outcome);
    }

    private void PersistOnce(string scheduleKey, IMessage e, Action then)
    {
        if (_state.ScheduleEvents.Contains(scheduleKey)) return;
        PersistEvent(e, _ => then());
    }

    private void PersistEvent<T>(T e, Action<T> then) where T : IMessage =>
        Persist(e, x =>
        {
            _state.Apply(x);
            AfterPersist();
            then(x);
        });

    private void AfterPersist()
    {
        if (++_eventsSinceSnapshot >= (_settings?.SnapshotEvery ?? 200))
        {
            _eventsSinceSnapshot = 0;
            SaveSnapshot(_state.ToSnapshot());
        }
    }
}
