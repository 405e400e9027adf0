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
        WorldSize);

    private RunCommandReply Reply(string key, bool accepted, string message) => new(key, accepted, message, Status());

    private void OnRunCommand(RunCommand cmd)
    {
        var key = cmd.IdempotencyKey;
        if (cmd is GetStatus) { Sender.Tell(Reply(key, true, "")); return; } // the status is the answer: no message
        if (_state.Commands.TryGetValue(key, out var done)) { Sender.Tell(Reply(key, done.Accepted, done.Message)); return; }
        if (_inFlight.TryGetValue(key, out var waiting)) { waiting.Add(Sender); return; }
        if (_settings == null || _completed || _halt != null)
        {
            Sender.Tell(Reply(key, false, "the run is not training (starting up or finishing); try again"));
            return;
        }
        var sender = Sender;
        switch (cmd)
        {
            case PauseRun when _state.Paused:
                Record(key, true, "already paused", sender);
                break;
            case PauseRun:
                // Journaled once the trainer says which step it stopped after (OnTrainingPaused).
                _inFlight[key] = [sender];
                _trainer.Tell(new PauseTraining(true, key));
                break;
            case ResumeRun when !_state.Paused:
                Record(key, true, "not paused", sender);
                break;
            case ResumeRun:
                PersistEvent(new RunResumed { Step = Status().Step, IdempotencyKey = key }, e =>
                {
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
        _state.ScheduleEvents.Add($"stage:{m.Stage}:{m.Step}");
        PersistEvent(new StageAdvanced { Stage = m.Stage, Step = m.Step, ByUser = true, IdempotencyKey = m.CommandKey },
            _ => Answer(m.CommandKey, $"stage set to {m.Stage} at step {m.Step}"));
    }

    private void OnTrainingPaused(TrainingPaused m) =>
        PersistEvent(new RunPaused { Step = m.Step, IdempotencyKey = m.CommandKey },
            e => Answer(m.CommandKey, RunState.PausedMessage(e.Step)));

    private void Answer(string key, string message)
    {
        if (!_inFlight.Remove(key, out var waiters)) return;
        foreach (var w in waiters) w.Tell(Reply(key, true, message));
    }
}
