using System.Diagnostics;
using System.Globalization;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Ect.Actors.Checkpoints;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;

namespace Ect.Actors.Run;

/// <summary>Creates the engine and its batch source for a run (the real TorchSharp pair or the fake one).</summary>
public delegate (ITrainingEngine Engine, IBatchSource Source) EngineFactory(RunSettings settings, string runDir);

/// <summary>
/// Runs the training steps on its own thread (a pinned dispatcher: Akka's default dispatcher never blocks).
/// One step per NextStep message, so control messages (pause, stage, config, checkpoint, stop) are handled
/// between steps, at a step boundary whose number is recorded: a resumed run applies them at the same step.
/// </summary>
public sealed class TrainerActor : ReceiveActor
{
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Config _baseConfig;
    private readonly string _runDir;
    private readonly EngineFactory _factory;
    private readonly IActorRef _checkpointer;
    private readonly IObserver<TrainingProgress> _stats;
    private readonly int _evaluatorCount;

    private ResumeInfo _resume = null!;
    private RunSettings _settings = null!;
    private readonly Dictionary<string, string> _overrides = new();
    private readonly List<(long Step, string Key, string Value)> _futureConfig = new();
    private readonly List<(long Step, int Stage)> _userStages = new();
    /// <summary>The journaled live changes in effect (step, key, value): recorded in each checkpoint for --rebuild-journal.</summary>
    private readonly List<(long Step, string Key, string Value)> _appliedConfig = new();
    private ITrainingEngine? _engine;
    private BatchPrefetcher? _loader;
    private long _step;
    private string _phase = Phases.Pretrain;
    private int _stage;
    private double _lr = double.NaN;
    private string _samplerState = "";
    private long _lastCheckpointStep = -1;
    private bool _paused, _halted, _checkpointRequested, _evaluationRequested;
    private string? _stopReason;
    private int _nanStreak;
    private readonly Stopwatch _clock = new();
    private double _imagesPerSecond;

    public static Props Props(Config config, string runDir, EngineFactory factory, IActorRef checkpointer, IObserver<TrainingProgress> stats, int evaluators) =>
        Akka.Actor.Props.Create(() => new TrainerActor(config, runDir, factory, checkpointer, stats, evaluators))
            .WithDispatcher("ect.trainer-dispatcher");

    public TrainerActor(Config config, string runDir, EngineFactory factory, IActorRef checkpointer, IObserver<TrainingProgress> stats, int evaluators)
    {
        _runDir = runDir;
        _baseConfig = config; _factory = factory; _checkpointer = checkpointer; _stats = stats; _evaluatorCount = evaluators;
        Receive<StartTraining>(Start);
        Receive<NextStep>(_ => OnNextStep());
        Receive<PauseTraining>(p =>
        {
            var wasPaused = _paused;
            _paused = p.Paused;
            if (wasPaused && !_paused) Self.Tell(new NextStep());
            // Messages are handled between steps, so _step is the step training stopped after (the coordinator's
            // sampled statistics may lag behind it by several steps).
            if (p.Paused && p.CommandKey is { } key) Context.Parent.Tell(new TrainingPaused(_resume.Generation, _step, key));
        });
        Receive<StopTraining>(m =>
        {
            _stopReason ??= m.Reason;
            if (_paused) { _paused = false; Self.Tell(new NextStep()); }
        });
        Receive<CheckpointNow>(_ => _checkpointRequested = true);
        Receive<EvaluateNow>(_ => _evaluationRequested = true);
        Receive<ApplyConfig>(m =>
        {
            // A live change supersedes the replayed changes of its key still ahead (LiveChanges.Effective).
            _futureConfig.RemoveAll(c => c.Key == m.Key);
            Apply(m.Key, m.Value);
            _appliedConfig.Add((_step, m.Key, m.Value));
            Context.Parent.Tell(new ConfigApplied(_resume.Generation, m.Key, m.Value, _step, m.CommandKey));
        });
        Receive<ApplyStage>(m =>
        {
            _userStages.Add((_step, m.Stage));
            Context.Parent.Tell(new StageApplied(_resume.Generation, m.Stage, _step, m.CommandKey));
        });
    }

    private void Start(StartTraining m)
    {
        _resume = m.Resume;
        try { Begin(); }
        catch (Exception e)
        {
            // Nothing to roll back to that would start differently (the same config builds the same engine):
            // the coordinator ends the run with the cause instead of restarting a trainer that waits forever.
            _halted = true;
            _log.Error(e, "The trainer could not start");
            Context.Parent.Tell(new TrainerStartFailed(_resume.Generation, _resume.Step,
                $"the trainer could not start at step {_resume.Step}: {e.GetType().Name}: {e.GetBaseException().Message}"));
        }
    }

    private void Begin()
    {
        foreach (var c in _resume.ConfigChanges.OrderBy(c => c.Step))
            if (c.Step <= _resume.Step) { _overrides[c.Key] = c.Value; _appliedConfig.Add(c); }
            else _futureConfig.Add(c);
        Rebuild();
        _userStages.AddRange(_resume.UserStages.OrderBy(u => u.Step));
        var (engine, source) = _factory(_settings, _runDir);
        _engine = engine;
        _step = _resume.Step;
        _phase = _resume.Phase;
        _stage = _resume.Stage;
        // The phase and stage at capture time first, so the optimizer state loads into the matching optimizer.
        _engine.SetPhase(_phase);
        _engine.SetStage(_stage);
        string state = source.InitialState;
        if (_resume.CheckpointPath != null)
        {
            var meta = _engine.LoadCheckpoint(_resume.CheckpointPath);
            state = meta.TryGetValue(CheckpointFormat.Sampler, out var st) ? st : throw new InvalidDataException($"{_resume.CheckpointPath}: no sampler state");
            var metaStep = long.Parse(meta[CheckpointFormat.Step], CultureInfo.InvariantCulture);
            if (metaStep != _step) throw new InvalidDataException($"{_resume.CheckpointPath}: step {metaStep} but the journal says {_step}");
            _lastCheckpointStep = _step;
            _log.Info("Resumed from {0} at step {1}", _resume.CheckpointPath, _step);
        }
        _samplerState = state;
        _loader = new BatchPrefetcher(source, state, _settings.Prefetch);
        _paused = _resume.Paused;
        _clock.Start();
        if (!_paused) Self.Tell(new NextStep());
    }

    private void Apply(string key, string value)
    {
        _overrides[key] = value;
        Rebuild();
    }

    private void Rebuild()
    {
        var c = _baseConfig;
        foreach (var (k, v) in _overrides) c = EctConfiguration.ParseSet($"{k}={v}").WithFallback(c);
        _settings = RunSettings.From(c, checkData: false);
    }

    private double Kimg(long step) => step * (double)_settings.BatchSize / 1000.0;

    private void OnNextStep()
    {
        if (_halted || _engine == null) return;
        // Journaled changes that took effect at this boundary in an earlier incarnation of the run.
        foreach (var c in _futureConfig.Where(c => c.Step == _step).ToList()) { Apply(c.Key, c.Value); _appliedConfig.Add(c); _futureConfig.Remove(c); }

        bool capped = _settings.MaxSteps > 0 && _step >= _settings.MaxSteps;
        if (_step >= _settings.TotalSteps || capped || _stopReason != null)
        {
            Halt(_step >= _settings.TotalSteps ? "finished" : capped ? $"step cap {_settings.MaxSteps} reached" : _stopReason!, _step >= _settings.TotalSteps);
            return;
        }
        if (_paused) return;

        var phase = Schedule.PhaseAt(_step, _settings.PretrainSteps);
        if (phase != _phase)
        {
            _phase = phase;
            _engine.SetPhase(phase);
            Context.Parent.Tell(new PhaseReached(_resume.Generation, phase, _step));
        }
        if (_phase == Phases.Tuning)
        {
            var stage = Schedule.StageAt(_step, _settings.PretrainSteps, _settings.BatchSize, _settings.KimgPerTick, _settings.DoubleTicks, _userStages);
            if (stage != _stage)
            {
                _stage = stage;
                _engine.SetStage(stage);
                Context.Parent.Tell(new StageReached(_resume.Generation, stage, _step));
            }
        }
        var lr = _phase == Phases.Pretrain ? _settings.PretrainLr : _settings.TuningLr;
        if (lr != _lr) { _lr = lr; _engine.SetLearningRate(lr); }

        EngineStepResult r;
        var t0 = _clock.Elapsed;
        try
        {
            using var batch = _loader!.Take();
            r = _engine.Step(batch);
            _samplerState = batch.StateAfter;
        }
        catch (Distributed.RanksDivergedException d)
        {
            // Not a rollback: the ranks would diverge again. The coordinator journals it and ends the run.
            _halted = true;
            _log.Error("Data-parallel ranks diverged at step {0}: {1}", _step + 1, d.Message);
            Context.Parent.Tell(new RanksDivergedAt(_resume.Generation, _step + 1, d.Ranks, d.WorldSize));
            return;
        }
        catch (Distributed.RankHungException h)
        {
            // Not a rollback either: MPI is left mid-step. The coordinator journals it and ends the run (and the job).
            _halted = true;
            _log.Error("Data-parallel step {0}: {1}", _step + 1, h.Message);
            Context.Parent.Tell(new RankHungAt(_resume.Generation, _step + 1, h.Message));
            return;
        }
        catch (Exception e)
        {
            // Out of memory, a libtorch error inside the step, a data loader that failed: roll back to the last
            // checkpoint and record why; a failure that repeats ends the run after ect.training.max-rollbacks.
            Fail($"step {_step + 1} failed: {e.GetType().Name}: {e.GetBaseException().Message}");
            return;
        }
        _step++;
        var dt = (_clock.Elapsed - t0).TotalSeconds;
        var ips = r.Images / Math.Max(dt, 1e-9);
        _imagesPerSecond = _imagesPerSecond == 0 ? ips : 0.9 * _imagesPerSecond + 0.1 * ips;
        _stats.OnNext(new TrainingProgress(_step, Kimg(_step), r.Loss, _phase, _stage, _lr, _imagesPerSecond, dt, DateTimeOffset.UtcNow));

        if (!double.IsFinite(r.Loss))
        {
            if (++_nanStreak >= _settings.NanStreakLimit)
            {
                Fail($"{_nanStreak} non-finite losses in a row (last at step {_step})");
                return;
            }
        }
        else _nanStreak = 0;

        if (_step % _settings.CheckpointEvery == 0 || _checkpointRequested) { _checkpointRequested = false; Checkpoint(); }
        if ((_settings.Evaluation.Every > 0 && _step % _settings.Evaluation.Every == 0 && _step < _settings.TotalSteps) || _evaluationRequested)
        {
            _evaluationRequested = false;
            RequestEvaluation(final: false);
        }
        Self.Tell(new NextStep());
    }

    private void Checkpoint()
    {
        if (_lastCheckpointStep == _step) return;
        var meta = new Dictionary<string, string>
        {
            [CheckpointFormat.Step] = _step.ToString(CultureInfo.InvariantCulture),
            [CheckpointFormat.Kimg] = Kimg(_step).ToString("R", CultureInfo.InvariantCulture),
            [CheckpointFormat.Phase] = _phase,
            [CheckpointFormat.Stage] = _stage.ToString(CultureInfo.InvariantCulture),
            [CheckpointFormat.Sampler] = _samplerState,
            // The file's format and version is its ect.format tag (CheckpointFormat); no second tag here.
            // What only the journal knew and the steps after this one depend on: lets --rebuild-journal resume exactly.
            [CheckpointFormat.ConfigChanges] = System.Text.Json.JsonSerializer.Serialize(_appliedConfig.Select(c => new[] { c.Step.ToString(CultureInfo.InvariantCulture), c.Key, c.Value })),
            [CheckpointFormat.UserStages] = System.Text.Json.JsonSerializer.Serialize(_userStages.Where(u => u.Step <= _step).Select(u => new[] { u.Step, u.Stage })),
        };
        // Which configuration made this checkpoint (`ect inspect` shows it; equal digests = the same run configuration).
        if (_resume.ConfigDigest.Length > 0) meta[CheckpointFormat.ConfigDigest] = _resume.ConfigDigest;
        // Which run wrote it (run-id, run-name, run-journal-id): a run directory and a journal are checked against it.
        foreach (var (k, v) in _resume.Identity?.Metadata ?? new Dictionary<string, string>()) meta[k] = v;
        var image = CaptureWithRetry(meta);
        _checkpointer.Tell(new WriteCheckpoint(_resume.Generation, image, _step, Kimg(_step), _phase, _stage, meta), Context.Parent);
        _lastCheckpointStep = _step;
    }

    /// <summary>
    /// The engine's capture writes the train state to a scratch file in checkpoints/ (the torch engine: a safetensors
    /// file as large as the checkpoint), so a full or failing disk meets it first, before the checkpointer's own
    /// retried write. Tried as often as the checkpointer tries (ect.checkpoint.write-attempts, -retry-delay-ms): the
    /// trainer runs on its own pinned thread, where waiting blocks nothing else. After the last failure the trainer
    /// fails with the cause and its errno (the run ends with exit 1; a restart resumes from the last checkpoint).
    /// </summary>
    private ICheckpointImage CaptureWithRetry(IReadOnlyDictionary<string, string> meta)
    {
        var policy = _settings.CheckpointWrite;
        var folder = Path.Combine(_runDir, "checkpoints");
        for (int attempt = 1; ; attempt++)
        {
            try { return _engine!.Capture(meta); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                var cause = IoError.Describe(e, Path.Combine(folder, ".capture-probe"));
                if (attempt >= policy.Attempts)
                    throw new CheckpointCaptureException($"the state of step {_step} could not be captured into {folder} ({attempt} attempt(s)): {cause}", e);
                _log.Warning("The state of step {0} could not be captured into {1} (attempt {2} of {3}): {4}; trying again in {5:F1} s",
                    _step, folder, attempt, policy.Attempts, cause, policy.RetryDelay.TotalSeconds);
                Thread.Sleep(policy.RetryDelay);
            }
        }
    }

    private void RequestEvaluation(bool final)
    {
        if (_evaluatorCount == 0) { if (final) Context.Parent.Tell(new EvaluationRequest(_step, [], true)); return; }
        var models = Enumerable.Range(0, _evaluatorCount).Select(_ => _engine!.CaptureEma()).ToList();
        Context.Parent.Tell(new EvaluationRequest(_step, models, final, Kimg(_step)));
    }

    private void Halt(string reason, bool finished)
    {
        _halted = true;
        Checkpoint();
        if (finished) RequestEvaluation(final: true);
        Context.Parent.Tell(new TrainingHalted(_resume.Generation, _step, reason, finished, _engine!.WeightsDigest(), _engine.EmaDigest()));
    }

    private void Fail(string reason)
    {
        _halted = true;
        _log.Warning("Training step failed: {0}", reason);
        Context.Parent.Tell(new StepFailed(_resume.Generation, _step, reason));
    }

    /// <summary>Marks the trainer's own failures so the coordinator's supervisor strategy can tell them apart.</summary>
    protected override bool AroundReceive(Receive receive, object message)
    {
        try { return base.AroundReceive(receive, message); }
        catch (Exception e) when (e is not TrainerFailedException) { throw new TrainerFailedException(e); }
    }

    protected override void PostStop()
    {
        _loader?.Dispose();
        _engine?.Dispose();
        base.PostStop();
    }
}

/// <summary>The engine could not capture a checkpoint's state after every try; the message names folder, tries and errno.</summary>
public sealed class CheckpointCaptureException(string message, Exception inner) : IOException(message, inner);

/// <summary>An exception thrown by the trainer outside a step (the coordinator stops the trainer and ends the run).</summary>
public sealed class TrainerFailedException(Exception inner) : Exception($"the trainer failed: {inner.Message}", inner);
