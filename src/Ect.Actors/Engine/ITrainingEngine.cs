namespace Ect.Actors.Engine;

/// <summary>What one training step reports.</summary>
public readonly record struct EngineStepResult(double Loss, int Images);

/// <summary>
/// The daemon's narrow view of the training computation (Ect.Compute's TrainStep/TrainState behind it).
/// Single-threaded: every call comes from the trainer's dedicated thread. Contract for exact resume:
/// after <see cref="LoadCheckpoint"/> of a file written from <see cref="Capture"/> at step S, feeding the
/// same batches produces bit-identical weights, EMA and optimizer state as the run that wrote it.
/// </summary>
public interface ITrainingEngine : IDisposable
{
    /// <summary>Selects the loss: <see cref="Phases.Pretrain"/> (EDM diffusion) or <see cref="Phases.Tuning"/> (ECT).</summary>
    void SetPhase(string phase);

    /// <summary>ECT stage (the gap t - r shrinks with it).</summary>
    void SetStage(int stage);

    void SetLearningRate(double lr);

    /// <summary>One optimizer step on a batch from the matching <see cref="IBatchSource"/>.</summary>
    EngineStepResult Step(Batch batch);

    /// <summary>
    /// A copy of the full training state (weights, EMA, optimizer, RNG) with <paramref name="metadata"/>, taken on
    /// the trainer thread as cheaply as the engine can; the checkpointer finishes writing it off that thread.
    /// </summary>
    ICheckpointImage Capture(IReadOnlyDictionary<string, string> metadata);

    /// <summary>Restores the state written by <see cref="ICheckpointImage.WriteTo"/>; returns the metadata stored with it.</summary>
    IReadOnlyDictionary<string, string> LoadCheckpoint(string path);

    /// <summary>A copy of the EMA weights that evaluators may use on another thread while training goes on.</summary>
    IEvaluationModel CaptureEma();

    /// <summary>SHA-256 (hex) of the current weights / EMA weights, for exact-resume checks.</summary>
    string WeightsDigest();
    string EmaDigest();
}

/// <summary>A captured training state. WriteTo may run on another thread than the capture.</summary>
public interface ICheckpointImage : IDisposable
{
    /// <summary>Writes the state and its metadata to <paramref name="path"/> (one file). The caller handles atomicity.</summary>
    void WriteTo(string path);
}

/// <summary>A frozen EMA network that generates images (consistency sampling) for evaluators.</summary>
public interface IEvaluationModel : IDisposable
{
    int Channels { get; }
    int Resolution { get; }

    /// <summary>
    /// Generates <paramref name="count"/> images with <paramref name="samplingSteps"/> network evaluations
    /// (1: D(t_max z, t_max); 2: then re-noise to midT), noise from <paramref name="seed"/> (never the training RNG);
    /// <paramref name="firstImage"/>: the set index of the first image; <paramref name="classes"/>: a conditional
    /// network's class of each set index (null: image i gets class i mod L, as `ect eval`'s; the sample grids ask for
    /// a row per class). Returns NCHW float values in [-1, 1]. The torch engines make them with
    /// Evaluation.ImageGenerator (Evaluation.EmaEvaluationModel), as `ect eval` does.
    /// </summary>
    float[] Generate(int count, int samplingSteps, int seed, double tMax, double midT, int firstImage = 0, Evaluation.ClassLabels? classes = null);
}

/// <summary>A batch of training data. <see cref="StateAfter"/> is the sampler state after this batch was drawn.</summary>
public sealed record Batch(object Payload, int Count, string StateAfter) : IDisposable
{
    public void Dispose() => (Payload as IDisposable)?.Dispose();
}

/// <summary>
/// A deterministic, resumable source of batches (Ect.Data's ResumableSampler + BatchAssembler behind it).
/// Restore(state) followed by Next() gives exactly the batches that followed the batch whose StateAfter it was.
/// </summary>
public interface IBatchSource : IDisposable
{
    /// <summary>The state of a fresh source (epoch 0, position 0).</summary>
    string InitialState { get; }
    void Restore(string state);
    Batch Next();
}
