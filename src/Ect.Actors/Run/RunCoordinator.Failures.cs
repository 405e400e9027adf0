using Akka.Actor;
using Akka.Event;
using Ect.Actors.Persistence.Events;

namespace Ect.Actors.Run;

/// <summary>
/// What a failure does to the run: a failed step rolls back to the last committed checkpoint (bounded), a trainer
/// that cannot start or throws outside a step ends the run with the cause, and a coordinator that stops before the
/// run completed (recovery failure, journal error) ends `ect train` with exit code 1 instead of leaving it waiting.
/// </summary>
public sealed partial class RunCoordinator
{
    private void OnStepFailed(StepFailed m)
    {
        var to = _state.LastCheckpoint?.Step ?? 0;
        if (_state.RollbacksInARow >= _settings.MaxRollbacks)
        {
            Transition(nameof(Ending), Ending);
            PersistEvent(new RunInterrupted { Step = m.Step, Reason = $"gave up after {_state.RollbacksInARow} rollbacks: {m.Reason}" },
                _ => Complete(new RunOutcome(1, $"Training failed at step {m.Step}: {m.Reason}; gave up after {_state.RollbacksInARow} rollbacks.{LiveChangesHint()}", m.Step)));
            return;
        }
        PersistEvent(new RolledBack { FromStep = m.Step, ToStep = to, Reason = m.Reason }, _ =>
        {
            _log.Warning("Rolling back from step {0} to the checkpoint at step {1}: {2}", m.Step, to, m.Reason);
            // The next trainer starts when this one has stopped (RollingBack, on its Terminated).
            Transition(nameof(RollingBack), RollingBack);
            Context.Stop(_trainer);
        });
    }

    private string? _trainerFailure;

    /// <summary>
    /// A trainer that throws outside a step (a bug, a checkpoint capture that fails) is stopped, not restarted:
    /// a restarted trainer would have lost its StartTraining and wait forever. Its Terminated ends the run with
    /// the cause. The checkpointer and the evaluators keep Akka's default (restart; they hold no run state).
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(e =>
    {
        if (e is not TrainerFailedException tf) return Akka.Actor.SupervisorStrategy.DefaultDecider.Decide(e);
        // A failure the trainer already described whole (CheckpointCaptureException: file, attempts, errno) keeps its
        // message; others are named by their innermost cause.
        _trainerFailure = tf.InnerException is CheckpointCaptureException described
            ? $"the trainer failed: {described.Message}"
            : $"the trainer failed: {tf.InnerException!.GetType().Name}: {tf.InnerException.GetBaseException().Message}";
        _log.Error(tf.InnerException, "The trainer failed");
        return Directive.Stop;
    });

    /// <summary>Journals why the run cannot go on and ends `ect train` with exit code 1 (a restart resumes it).</summary>
    private void EndWithError(long step, string reason)
    {
        if (_behaviour is nameof(Ending) or nameof(Done)) return;
        Transition(nameof(Ending), Ending);
        _endReason = reason; // PostStop's message if even the journal cannot take RunInterrupted (a full disk)
        _trainer.Tell(new StopTraining(reason));
        PersistEvent(new RunInterrupted { Step = step, Reason = reason },
            _ => Complete(new RunOutcome(1, $"The run cannot go on: {reason}. Fix the cause and start `ect train` on the same run directory to resume.", step)));
    }

    // The journal's own write failures: RunCoordinator.JournalFailure.cs (_journalWriteFailure).
    private string? _recoveryFailure, _endReason;

    /// <summary>
    /// The journal could not be replayed (a database error, or a recovery slower than
    /// akka.persistence.journal-plugin-fallback.recovery-event-timeout on an overloaded machine). Akka stops the
    /// actor after this; keep the reason so PostStop can hand it to `ect train` instead of leaving it waiting.
    /// </summary>
    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _recoveryFailure = $"recovering the run from its journal failed: {reason.GetBaseException().Message}";
        _log.Error(reason, "Recovery failed");
        base.OnRecoveryFailure(reason, message);
    }

    private bool _restarting;

    /// <summary>A restart by the supervisor replays the journal and carries on: not the end of the run.</summary>
    protected override void PreRestart(Exception reason, object message)
    {
        _restarting = true;
        base.PreRestart(reason, message);
    }

    protected override void PostStop()
    {
        _statsSubscription?.Dispose();
        // Fail fast: whatever stopped the coordinator before the run completed (recovery failure, journal write
        // failure, a bug), `ect train` must end with an error rather than wait forever on the outcome.
        if (_behaviour != nameof(Done) && !_restarting)
        {
            _behaviour = nameof(Done);
            _setup.Completion.TrySetResult(new RunOutcome(1,
                _recoveryFailure
                ?? (_endReason is { } r ? $"The run cannot go on: {r}" + (_journalWriteFailure is { } j ? $"; then {j}" : ". Fix the cause and start `ect train` on the same run directory to resume.") : null)
                ?? _journalWriteFailure
                ?? "the run coordinator stopped unexpectedly; the run directory keeps every committed checkpoint, start `ect train` again to resume",
                _state.LastCheckpoint?.Step ?? 0));
        }
        base.PostStop();
    }
}
