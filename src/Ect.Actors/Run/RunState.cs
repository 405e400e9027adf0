using Ect.Actors.Engine;
using Ect.Actors.Persistence.Events;
using Google.Protobuf;

namespace Ect.Actors.Run;

/// <summary>
/// The run's event-sourced state: what the journal says happened. Pure: Apply(event) is the only way it
/// changes, so recovery (snapshot + events) rebuilds exactly the state the run had.
/// </summary>
public sealed class RunState
{
    /// <summary>The run's readable name (RunStarted.run_id: the run directory's name when it began).</summary>
    public string RunId { get; private set; } = "";
    /// <summary>The run's UUID (RunIdentity.Id); empty for runs journaled before identities.</summary>
    public string RunUuid { get; private set; } = "";
    /// <summary>The absolute run directory the journal records (RunStarted, then RunDirectoryChanged), and its host.</summary>
    public string RunDirectory { get; private set; } = "";
    public string Host { get; private set; } = "";
    public string ConfigHocon { get; private set; } = "";
    public bool Started => ConfigHocon.Length > 0;
    public string Phase { get; private set; } = Phases.Pretrain;
    public int Stage { get; private set; }
    public long Step { get; private set; }
    public double Kimg { get; private set; }
    public bool Paused { get; private set; }
    public bool Finished { get; private set; }
    public int RollbacksInARow { get; private set; }
    /// <summary>Ranks of the run's last start (WorldSizeChanged; 1 for runs without mpirun and runs journaled before it).</summary>
    public int WorldSize { get; private set; } = 1;
    // Read-only outside: Apply (and FromSnapshot) are the only writers.
    public IReadOnlyList<CheckpointCommitted> Checkpoints => _checkpoints;
    public IReadOnlyList<ConfigChanged> ConfigChanges => _configChanges;
    public IReadOnlyList<UserStage> UserStages => _userStages;
    private readonly List<CheckpointCommitted> _checkpoints = new();
    private readonly List<ConfigChanged> _configChanges = new();
    private readonly List<UserStage> _userStages = new();
    /// <summary>Applied command keys and their replies (lookup); the order they were applied is in <see cref="CommandOrder"/>.</summary>
    public IReadOnlyDictionary<string, CommandRecord> Commands => _commands;
    /// <summary>Remembered command keys, oldest first (the trim drops from the front).</summary>
    public IEnumerable<string> CommandOrder => _commandOrder;
    public IReadOnlyList<EvaluationRecorded> Evaluations => _evaluations;
    public IReadOnlySet<string> ScheduleEvents => _scheduleEvents;
    private readonly List<EvaluationRecorded> _evaluations = new();
    private readonly HashSet<string> _scheduleEvents = new();

    /// <summary>How many applied command keys are remembered (a retry comes seconds later, not days).</summary>
    public const int MaxRememberedCommands = 10_000;

    public CheckpointCommitted? LastCheckpoint => Checkpoints.Count == 0 ? null : Checkpoints[^1];

    public void Apply(IMessage e)
    {
        switch (e)
        {
            case RunStarted s: RunId = s.RunId; ConfigHocon = s.ConfigHocon; RunUuid = s.RunUuid; RunDirectory = s.RunDir; Host = s.Host; break;
            case RunDirectoryChanged d: RunDirectory = d.ToDir; Host = d.Host; break;
            case PhaseChanged p:
                Phase = p.Phase;
                _scheduleEvents.Add($"phase:{p.Phase}:{p.Step}");
                if (p.Phase == Phases.Finished) Finished = true;
                break;
            case StageAdvanced s:
                Stage = s.Stage;
                _scheduleEvents.Add($"stage:{s.Stage}:{s.Step}");
                if (s.ByUser)
                {
                    _userStages.Add(new UserStage { Stage = s.Stage, Step = s.Step });
                    Remember(s.IdempotencyKey, true, $"stage set to {s.Stage} at step {s.Step}");
                }
                break;
            case CheckpointCommitted c:
                _checkpoints.RemoveAll(x => x.Step >= c.Step);
                _checkpoints.Add(c);
                Step = Math.Max(Step, c.Step);
                Kimg = Math.Max(Kimg, c.Kimg);
                if (c.Step > RollbackStep) RollbacksInARow = 0;
                break;
            case EvaluationRecorded ev: _evaluations.Add(ev); break;
            case ConfigChanged c:
                _configChanges.Add(c);
                Remember(c.IdempotencyKey, true, $"{c.Key} = {c.Value} from step {c.Step}");
                break;
            case RunPaused p: Paused = true; Remember(p.IdempotencyKey, true, PausedMessage(p.Step)); break;
            case RunResumed r: Paused = false; Remember(r.IdempotencyKey, true, $"resumed at step {r.Step}"); break;
            case RunInterrupted: break;
            case WorldSizeChanged w: WorldSize = w.ToSize; break;
            case RanksDiverged: break;
            case RolledBack r: RollbacksInARow++; RollbackStep = r.FromStep; break;
            case RunFinished f: Finished = true; Phase = Phases.Finished; Step = f.Step; Kimg = f.Kimg; break;
            case CommandApplied c: Remember(c.IdempotencyKey, c.Accepted, c.Message); break;
            // A finished run made longer: it trains again from its last checkpoint, in that checkpoint's phase.
            case RunExtended: Finished = false; Phase = LastCheckpoint?.Phase ?? Phases.Tuning; break;
        }
    }

    /// <summary>The step the last rollback came from: only a checkpoint committed beyond it resets <see cref="RollbacksInARow"/>.</summary>
    public long RollbackStep { get; private set; }

    // The trim must drop the oldest key, and the same one on every replay. Dictionary enumeration order is not
    // insertion order once entries have been removed (freed slots are reused), so the order is kept explicitly.
    private readonly Dictionary<string, CommandRecord> _commands = new();
    private readonly Queue<string> _commandOrder = new();

    /// <summary>The answer to `ect ctl pause`: Step is the last step the trainer completed before it stopped.</summary>
    public static string PausedMessage(long step) => $"paused after step {step}";

    private void Remember(string key, bool accepted, string message) =>
        Remember(new CommandRecord { IdempotencyKey = key, Accepted = accepted, Message = message });

    private void Remember(CommandRecord record)
    {
        var key = record.IdempotencyKey;
        if (string.IsNullOrEmpty(key)) return;
        // A key seen again keeps its place (its first application is what a retry refers to).
        if (!_commands.ContainsKey(key)) _commandOrder.Enqueue(key);
        _commands[key] = record;
        while (_commands.Count > MaxRememberedCommands) _commands.Remove(_commandOrder.Dequeue());
    }

    public RunSnapshot ToSnapshot()
    {
        var s = new RunSnapshot
        {
            RunId = RunId, ConfigHocon = ConfigHocon, Phase = Phase, Stage = Stage, Step = Step, Kimg = Kimg,
            Paused = Paused, Finished = Finished, RollbacksInARow = RollbacksInARow, RollbackStep = RollbackStep,
            RunUuid = RunUuid, RunDir = RunDirectory, Host = Host, WorldSize = WorldSize,
        };
        s.Checkpoints.AddRange(Checkpoints);
        s.ConfigChanges.AddRange(ConfigChanges);
        s.UserStages.AddRange(UserStages);
        s.Commands.AddRange(_commandOrder.Select(k => _commands[k])); // oldest first: FromSnapshot restores the order
        s.Evaluations.AddRange(Evaluations);
        s.ScheduleEvents.AddRange(ScheduleEvents);
        return s;
    }

    public static RunState FromSnapshot(RunSnapshot s)
    {
        var r = new RunState
        {
            RunId = s.RunId, ConfigHocon = s.ConfigHocon, Phase = s.Phase, Stage = s.Stage, Step = s.Step, Kimg = s.Kimg,
            Paused = s.Paused, Finished = s.Finished, RollbacksInARow = s.RollbacksInARow,
            // A snapshot written before rollback_step existed: the rollback came from no earlier than the last
            // committed step, so only a checkpoint beyond it resets the count (never a replayed older one).
            RollbackStep = s.HasRollbackStep ? s.RollbackStep : s.Step,
            RunUuid = s.RunUuid, RunDirectory = s.RunDir, Host = s.Host, WorldSize = s.HasWorldSize ? s.WorldSize : 1,
        };
        r._checkpoints.AddRange(s.Checkpoints);
        r._configChanges.AddRange(s.ConfigChanges);
        r._userStages.AddRange(s.UserStages);
        foreach (var c in s.Commands) r.Remember(c);
        r._evaluations.AddRange(s.Evaluations);
        foreach (var e in s.ScheduleEvents) r._scheduleEvents.Add(e);
        return r;
    }
}
