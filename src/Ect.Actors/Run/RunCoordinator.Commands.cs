using Akka.Actor;
using Ect.Actors.Configuration;
using Ect.Actors.Control;
using Ect.Actors.Engine;
using Ect.Actors.Persistence.Events;

namespace Ect.Actors.Run;

// Remote commands (ect ctl, via the control actor). Idempotent: the reply to an applied key is journaled
// with the change, so a retried key (even after a crash and restart) gets the same reply and changes nothing.
public sealed partial class RunCoordinator
{
    private RunStatus Status() => new(
        _state.RunId,
        _state.Phase,
        _lastStats?.Step ?? _state.Step,
        _lastStats?.Kimg ?? _state.Kimg,
        _lastStats?.Stage ?? _state.Stage,
        _state.Paused,
        _lastStats?.Loss,
        _lastStats?.ImagesPerSecond,
        _state.LastCheckpoint?.Path,
        WorldSize,
        DeviceText());

    private string? _deviceText;

    /// <summary>The device `ect ctl status` shows: ect.run.device resolved as the engine resolves it (once).</summary>
    private string? DeviceText() => _settings is null ? null : _deviceText ??= Ect.Actors.Engine.DeviceText.Of(_settings);

    private RunCommandReply Reply(string key, bool accepted, string message) => new(key, accepted, message, Status());

    /// <summary>
    /// Answers what needs no trainer, in every behaviour: the status, a key already applied (its journaled reply), a
    /// key in flight (one more waiter). False when the command still has to be applied.
    /// </summary>
    private bool AnsweredWithoutTrainer(RunCommand cmd)
    {
        var key = cmd.IdempotencyKey;
        if (cmd is GetStatus) { Sender.Tell(Reply(key, true, "")); return true; } // the status is the answer: no message
        if (_state.Commands.TryGetValue(key, out var done)) { Sender.Tell(Reply(key, done.Accepted, done.Message)); return true; }
        if (_inFlight.TryGetValue(key, out var waiting)) { waiting.Add(Sender); return true; }
        return false;
    }

    /// <summary>Starting, Halting, Ending, Done: no trainer takes commands.</summary>
    private void RefuseNotTraining(RunCommand cmd)
    {
        if (AnsweredWithoutTrainer(cmd)) return;
        Sender.Tell(Reply(cmd.IdempotencyKey, false, "the run is not training (starting up or finishing); try again"));
    }

    /// <summary>Training and Paused: the command is applied by the trainer at its next step boundary, or journaled here.</summary>
    private void OnRunCommand(RunCommand cmd, bool paused)
    {
        if (AnsweredWithoutTrainer(cmd)) return;
        var key = cmd.IdempotencyKey;
        var sender = Sender;
        switch (cmd)
        {
            case PauseRun when paused:
                Record(key, true, "already paused", sender);
                break;
            case PauseRun:
                // Journaled once the trainer says which step it stopped after (OnTrainingPaused).
                _inFlight[key] = [sender];
                _trainer.Tell(new PauseTraining(true, key));
                break;
            case ResumeRun when !paused:
                Record(key, true, "not paused", sender);
                break;
            case ResumeRun:
                PersistEvent(new RunResumed { Step = Status().Step, IdempotencyKey = key }, e =>
                {
                    Transition(nameof(Training), Training);
                    _trainer.Tell(new PauseTraining(false));
                    sender.Tell(Reply(key, true, $"resumed at step {e.Step}"));
                });
                break;
            case RequestCheckpoint:
                Record(key, true, "checkpoint at the next step boundary", sender, () => _trainer.Tell(new CheckpointNow()));
                break;
            case RequestEvaluation:
                Record(key, true, "evaluation at the next step boundary", sender, () => _trainer.Tell(new EvaluateNow()));
                break;
            case StopRun:
                Record(key, true, "stopping: final checkpoint, then exit", sender, () => StopTrainer("ect ctl stop"));
                break;
            case SetStage s when LiveKeyRanges.CheckStage(s.Stage) is { } outOfRange:
                Record(key, false, outOfRange, sender);
                break;
            case SetStage when _state.Phase != Phases.Tuning:
                Record(key, false, StageRefusedOutsideTuning(_state.Phase), sender);
                break;
            case SetStage s:
                _inFlight[key] = [sender];
                _trainer.Tell(new ApplyStage(s.Stage, key));
                break;
            case SetConfigValue c:
                var full = c.Key.StartsWith("ect.", StringComparison.Ordinal) ? c.Key : "ect." + c.Key;
                var problem = RunSettings.CheckLiveChange(EffectiveConfig(), full, c.Value);
                if (problem != null) { Record(key, false, problem, sender); break; }
                _inFlight[key] = [sender];
                _trainer.Tell(new ApplyConfig(full, c.Value, key));
                break;
            default:
                sender.Tell(Reply(key, false, $"unknown command {cmd.GetType().Name}"));
                break;
        }
    }

    /// <summary>Why `ect ctl stage N` is refused outside tuning (the stage is ECT's schedule of Delta t).</summary>
    internal static string StageRefusedOutsideTuning(string phase) =>
        "stage applies to ECT tuning; " + phase switch
        {
            Phases.Pretrain => "the run is in pretraining",
            Phases.FinalEvaluation => "the run is in its final evaluation",
            Phases.Finished => "the run has finished",
            _ => $"the run is in phase {phase}",
        };

    /// <summary>Journals the reply to a command that changes no other state, then answers.</summary>
    private void Record(string key, bool accepted, string message, IActorRef sender, Action? then = null) =>
        PersistEvent(new CommandApplied { IdempotencyKey = key, Accepted = accepted, Message = message }, _ =>
        {
            then?.Invoke();
            sender.Tell(Reply(key, accepted, message));
        });

    private void OnConfigApplied(ConfigApplied m) =>
        PersistEvent(new ConfigChanged { Key = m.Key, Value = m.Value, Step = m.Step, IdempotencyKey = m.CommandKey }, _ =>
        {
            _settings = RunSettings.From(EffectiveConfig(), checkData: false);
            Answer(m.CommandKey, $"{m.Key} = {m.Value} from step {m.Step}");
        });

    private void OnStageApplied(StageApplied m)
    {
        // RunState.Apply records the stage in ScheduleEvents (a StageReached of the same stage and step is not journaled twice).
        PersistEvent(new StageAdvanced { Stage = m.Stage, Step = m.Step, ByUser = true, IdempotencyKey = m.CommandKey },
            _ => Answer(m.CommandKey, $"stage set to {m.Stage} at step {m.Step}"));
    }

    /// <param name="then">Training becomes Paused; Halting stays (the pause was asked before the trainer halted).</param>
    private void OnTrainingPaused(TrainingPaused m, Action then) =>
        PersistEvent(new RunPaused { Step = m.Step, IdempotencyKey = m.CommandKey }, e =>
        {
            then();
            Answer(m.CommandKey, RunState.PausedMessage(e.Step));
        });

    private void Answer(string key, string message)
    {
        if (!_inFlight.Remove(key, out var waiters)) return;
        foreach (var w in waiters) w.Tell(Reply(key, true, message));
    }
}
