namespace Ect.Actors.Control;

// The messages that the remote control endpoint forwards to the run coordinator, and the replies.
// Immutable records. Every command carries an idempotency key: a retried command is applied once
// (the coordinator remembers applied keys in its persisted state).

/// <summary>A command from `ect ctl`, after the control actor has checked its token.</summary>
public abstract record RunCommand(string IdempotencyKey);

public sealed record GetStatus(string IdempotencyKey) : RunCommand(IdempotencyKey);
public sealed record PauseRun(string IdempotencyKey) : RunCommand(IdempotencyKey);
public sealed record ResumeRun(string IdempotencyKey) : RunCommand(IdempotencyKey);
public sealed record RequestCheckpoint(string IdempotencyKey) : RunCommand(IdempotencyKey);
public sealed record RequestEvaluation(string IdempotencyKey) : RunCommand(IdempotencyKey);
public sealed record SetStage(string IdempotencyKey, int Stage) : RunCommand(IdempotencyKey);
public sealed record SetConfigValue(string IdempotencyKey, string Key, string Value) : RunCommand(IdempotencyKey);
public sealed record StopRun(string IdempotencyKey) : RunCommand(IdempotencyKey);

/// <summary>Reply to every RunCommand. Accepted=false carries a message naming what was wrong (unknown key, bad value).</summary>
public sealed record RunCommandReply(string IdempotencyKey, bool Accepted, string Message, RunStatus? Status);

public sealed record RunStatus(
    string RunId,
    string Phase,
    long Step,
    double Kimg,
    int Stage,
    bool Paused,
    double? LastLoss,
    double? ImagesPerSecond,
    string? LastCheckpoint,
    int WorldSize = 1,
    string? Device = null);
