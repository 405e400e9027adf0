using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Ect.Actors.Control;
using Ect.Actors.Persistence.Events;
using Google.Protobuf;

namespace Ect.Actors.Run;

/// <summary>Marks a method that is one of the run coordinator's behaviours (docs/architecture.md draws them; a test keeps both equal).</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class CoordinatorBehaviourAttribute : Attribute;

// The run coordinator as a state machine: each behaviour below is a set of message handlers (Akka's Become), and the
// run's phase is the behaviour the coordinator is in. What the run has done is RunState (changed only by journaled
// events); a behaviour changes only after the event that decides it is journaled. docs/architecture.md has the diagram.
//
//   Recovering -> Starting -> Training <-> Paused
//   Training/Paused -> RollingBack -> Training/Paused (a failed step: the next trainer resumes from the last checkpoint)
//   Training/Paused -> Halting -> Ending -> Done (the trainer stopped stepping; its final checkpoint and evaluations)
//   any -> Ending -> Done (the run cannot go on), Starting -> Done (refused, or a finished run with nothing to do)
public sealed partial class RunCoordinator
{
    /// <summary>The behaviour the coordinator is in (its name, for logs and PostStop).</summary>
    private string _behaviour = nameof(Recovering);

    private void Transition(string name, Action behaviour)
    {
        if (name != _behaviour) _log.Debug("Run coordinator: {0} -> {1}", _behaviour, name);
        _behaviour = name;
        Become(behaviour);
        Stash.UnstashAll(); // commands held while rolling back
    }

    /// <summary>Replaying the snapshot and the journal into RunState (commands wait: Akka stashes them until the end).</summary>
    [CoordinatorBehaviour]
    private void Recovering()
    {
        Recover<SnapshotOffer>(o =>
        {
            if (o.Snapshot is RunSnapshot s) _state = RunState.FromSnapshot(s);
        });
        Recover<IMessage>(e => _state.Apply(e));
        Recover<RecoveryCompleted>(_ => { });
    }

    /// <summary>From the end of recovery (Begin) to the first trainer: identity, extension, init check, RunStarted or resume.</summary>
    [CoordinatorBehaviour]
    private void Starting()
    {
        Command<Begin>(_ => OnBegin());
        Command<InitChecked>(OnInitChecked);
        Command<RunCommand>(RefuseNotTraining);
        Always(); // a stop before the trainer exists is handed to it when it starts (StopTrainer)
    }

    /// <summary>A trainer steps; commands go to it and its answers are journaled.</summary>
    [CoordinatorBehaviour]
    private void Training() => WithTrainer(paused: false);

    /// <summary>The trainer waits at a step boundary (RunPaused journaled) until `ect ctl resume` or a stop.</summary>
    [CoordinatorBehaviour]
    private void Paused() => WithTrainer(paused: true);

    private void WithTrainer(bool paused)
    {
        Command<RunCommand>(c => OnRunCommand(c, paused));
        Command<TrainingPaused>(m => Current(m.Generation), m => OnTrainingPaused(m, () => Transition(nameof(Paused), Paused)));
        Command<TrainingHalted>(m => Current(m.Generation), m =>
        {
            Transition(nameof(Halting), () => Halting(m));
            TryFinish(m);
        });
        Command<StepFailed>(m => Current(m.Generation), OnStepFailed);
        Command<TrainerStartFailed>(m => Current(m.Generation), m => EndWithError(m.Step, m.Reason));
        Command<RanksDivergedAt>(m => Current(m.Generation), OnRanksDiverged); // RunCoordinator.Distributed.cs
        Command<RankHungAt>(m => Current(m.Generation), OnRankHung);
        Command<Terminated>(t => t.ActorRef.Equals(_trainer), _ => OnTrainerStopped());
        TrainerAnswers(then: () => { });
        Always();
    }

    /// <summary>A step failed and RolledBack is journaled: the old trainer is stopping; its Terminated starts the next one.</summary>
    [CoordinatorBehaviour]
    private void RollingBack()
    {
        Command<Terminated>(t => t.ActorRef.Equals(_trainer), _ => StartTrainer());
        // The new trainer answers them (a stop is remembered for it); the old one would not.
        Command<RunCommand>(c => { if (!AnsweredWithoutTrainer(c)) Stash.Stash(); });
        TrainerAnswers(then: () => { }); // e.g. the checkpoint written just before the failed step
        Always();
    }

    /// <summary>
    /// The trainer stopped stepping (finished, step cap, stop): waiting for its final checkpoint to be journaled and,
    /// for a finished run, for the final evaluations (answered or failed: an evaluator that died counts as failed).
    /// </summary>
    [CoordinatorBehaviour]
    private void Halting(TrainingHalted halt)
    {
        Command<RunCommand>(RefuseNotTraining);
        Command<TrainingPaused>(m => Current(m.Generation), m => OnTrainingPaused(m, () => { }));
        Command<Terminated>(t => t.ActorRef.Equals(_trainer), _ => OnTrainerStopped());
        TrainerAnswers(then: () => TryFinish(halt));
        Always();
    }

    /// <summary>The run's last event (RunFinished or RunInterrupted) is being journaled; then Done.</summary>
    [CoordinatorBehaviour]
    private void Ending()
    {
        Command<RunCommand>(RefuseNotTraining);
        Always();
    }

    /// <summary>The outcome is handed to `ect train`; the actor system is stopping.</summary>
    [CoordinatorBehaviour]
    private void Done()
    {
        Command<RunCommand>(RefuseNotTraining);
        Always();
    }

    /// <summary>
    /// What the trainer, the checkpointer and the evaluators answer while a trainer exists (Training, Paused,
    /// RollingBack, Halting); <paramref name="then"/> runs after each one that may end the run (Halting: TryFinish).
    /// </summary>
    private void TrainerAnswers(Action then)
    {
        Command<PhaseReached>(m => Current(m.Generation), m =>
            PersistOnce($"phase:{m.Phase}:{m.Step}", new PhaseChanged { Phase = m.Phase, Step = m.Step }, then));
        Command<StageReached>(m => Current(m.Generation), m =>
            PersistOnce($"stage:{m.Stage}:{m.Step}", new StageAdvanced { Stage = m.Stage, Step = m.Step }, then));
        Command<ConfigApplied>(m => Current(m.Generation), OnConfigApplied);
        Command<StageApplied>(m => Current(m.Generation), OnStageApplied);
        Command<CheckpointWritten>(m => Current(m.Generation), m => OnCheckpointWritten(m, then));
        // The checkpointer has already tried again: without checkpoints the run must not go on (nor wait for a commit).
        Command<CheckpointWriteFailed>(m => EndWithError(m.Step, m.Reason));
        Command<EvaluationDone>(m => OnEvaluationDone(m, then));
        Command<EvaluationFailed>(m => OnEvaluationFailed(m, then));
        // The evaluation supervisor answers every evaluation itself; should it stop anyway, nothing is awaited from it.
        Command<Terminated>(t => t.ActorRef.Equals(_evaluators), _ =>
        {
            _log.Error("The evaluators stopped; the run goes on without evaluations");
            _evaluators = ActorRefs.Nobody;
            if (_finalEvaluationsOutstanding > 0) _finalEvaluationsOutstanding = 0;
            then();
        });
    }

    /// <summary>Handlers of every behaviour but Recovering.</summary>
    private void Always()
    {
        Command<StatsSample>(s => _lastStats = s.Stats);
        Command<StopRequested>(m => StopTrainer(m.Reason));
        Command<Terminated>(_ => { }); // a trainer that stopped when no behaviour waits for it (watched: never unhandled)
        Command<EvaluationRequest>(OnEvaluationRequest);
        // A checkpoint or an evaluation that ends after the run did is still journaled (the files exist; a restart
        // may resume from that checkpoint).
        Command<CheckpointWritten>(m => Current(m.Generation), m => OnCheckpointWritten(m, () => { }));
        Command<EvaluationDone>(m => OnEvaluationDone(m, () => { }));
        Command<EvaluationFailed>(m => OnEvaluationFailed(m, () => { }));
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning("Snapshot failed: {0}", f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
    }

    private void OnEvaluationRequest(EvaluationRequest r)
    {
        if (r.Final) _finalEvaluationsOutstanding = r.Models.Count;
        if (_evaluators.IsNobody())
        {
            // No evaluators (not started, or gone): nothing will answer, so nothing is awaited.
            foreach (var m in r.Models) m.Dispose();
            if (r.Final) _finalEvaluationsOutstanding = 0;
            return;
        }
        _evaluators.Tell(r);
    }

    /// <summary>The trainer stopped by itself: a failure outside a step ends the run (the supervisor strategy kept why).</summary>
    private void OnTrainerStopped()
    {
        if (_trainerFailure != null) EndWithError(_state.LastCheckpoint?.Step ?? 0, _trainerFailure);
    }
}
