using Ect.Actors.Engine;

namespace Ect.Actors.Run;

// Immutable messages between the run's actors. Generation numbers tell the coordinator which trainer
// incarnation sent a message (after a rollback, late messages of the old trainer are ignored).

/// <summary>Statistics of one training step, published by the trainer as an IObservable.</summary>
public sealed record TrainingProgress(long Step, double Kimg, double Loss, string Phase, int Stage, double LearningRate,
    double ImagesPerSecond, double StepSeconds, DateTimeOffset Time);

/// <summary>
/// Where the trainer starts: a committed checkpoint (or none) and the journaled changes to replay. ConfigDigest: SHA-256
/// of the configuration the run was started with (RunStarted.config_hocon), written into every checkpoint's metadata.
/// </summary>
public sealed record ResumeInfo(
    int Generation,
    string? CheckpointPath,
    long Step,
    string Phase,
    int Stage,
    IReadOnlyList<(long Step, string Key, string Value)> ConfigChanges,
    IReadOnlyList<(long Step, int Stage)> UserStages,
    bool Paused,
    string ConfigDigest = "",
    RunIdentity? Identity = null);

internal sealed record StartTraining(ResumeInfo Resume);
/// <summary>The trainer to itself: run the next training step (one message per step, so control messages come between steps). Not EDM's kimg tick (Schedule.cs).</summary>
internal sealed record NextStep;
/// <summary>CommandKey: set by `ect ctl pause`; the trainer then answers <see cref="TrainingPaused"/> with the step it stopped after.</summary>
internal sealed record PauseTraining(bool Paused, string? CommandKey = null);
internal sealed record StopTraining(string Reason);
internal sealed record CheckpointNow;
internal sealed record EvaluateNow;
internal sealed record ApplyConfig(string Key, string Value, string CommandKey);
internal sealed record ApplyStage(int Stage, string CommandKey);

internal sealed record ConfigApplied(int Generation, string Key, string Value, long Step, string CommandKey);
internal sealed record StageApplied(int Generation, int Stage, long Step, string CommandKey);
/// <summary>The trainer has paused: Step is the last step it completed (no step runs after it until a resume).</summary>
internal sealed record TrainingPaused(int Generation, long Step, string CommandKey);
internal sealed record PhaseReached(int Generation, string Phase, long Step);
internal sealed record StageReached(int Generation, int Stage, long Step);
internal sealed record StepFailed(int Generation, long Step, string Reason);
/// <summary>The trainer could not build its engine or load its checkpoint: the run cannot go on.</summary>
internal sealed record TrainerStartFailed(int Generation, long Step, string Reason);
/// <summary>The trainer stopped stepping at Step (finished, step cap, stop request); its final checkpoint is on its way.</summary>
internal sealed record TrainingHalted(int Generation, long Step, string Reason, bool Finished, string WeightsSha256, string EmaSha256);
internal sealed record StatsSample(TrainingProgress Stats);

internal sealed record WriteCheckpoint(int Generation, ICheckpointImage Image, long Step, double Kimg, string Phase, int Stage,
    IReadOnlyDictionary<string, string> Metadata);
internal sealed record CheckpointWritten(int Generation, string RelativePath, long Step, double Kimg, string Sha256, string Phase, int Stage);
internal sealed record CheckpointWriteFailed(int Generation, long Step, string Reason);
internal sealed record DeleteCheckpoints(IReadOnlyList<string> RelativePaths);

/// <summary>Kimg: thousands of training images at Step (NaN when the sender does not know it).</summary>
internal sealed record Evaluate(long Step, IEvaluationModel Model, bool Final, double Kimg = double.NaN);
internal sealed record EvaluationDone(string Evaluator, long Step, IReadOnlyList<string> Files, IReadOnlyDictionary<string, double> Metrics, bool Final);
internal sealed record EvaluationFailed(string Evaluator, long Step, string Reason, bool Final);
/// <summary>Trainer -> coordinator: one EMA capture per evaluator.</summary>
internal sealed record EvaluationRequest(long Step, IReadOnlyList<IEvaluationModel> Models, bool Final, double Kimg = double.NaN);
