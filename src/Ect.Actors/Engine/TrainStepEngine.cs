using Ect.Actors.Checkpoints;
using Ect.Compute.Training;
using Ect.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Actors.Engine;

/// <summary>
/// What the torch engines (<see cref="TorchTrainingEngine"/>, <see cref="Edm2TrainingEngine"/>) share around their
/// training step: the network and its EMA (built after seeding torch with the run's seed), one step per phase (a phase
/// change disposes the old step and builds the new one), the stage/lr/state delegation to the step, this rank's shard of
/// a batch in a data-parallel job, checkpoint capture to a scratch file moved into place by the checkpointer, digests.
/// </summary>
public abstract class TrainStepEngine<TNet, TStep> : ITrainingEngine, Distributed.IDataParallelEngine
    where TNet : Ect.Compute.Preconditioning.Precond
    where TStep : class, ITrainStep
{
    private readonly int _batchSize;
    private readonly string _scratchDir;
    private TStep? _step;
    private string? _phase;
    private DataParallel? _parallel;
    private readonly Ect.Compute.Runtime.ComputeDevice _device;

    /// <param name="newNetwork">builds one instance of the architecture; called twice (network, then EMA) right after torch is seeded with <paramref name="seed"/> (weight initialisation).</param>
    /// <param name="device">where the steps run (ect.run.device): batches, assembled on the host, are copied there; null = the CPU. The derived engine moves its networks there.</param>
    protected TrainStepEngine(int batchSize, long seed, int threads, string scratchDir, Func<TNet> newNetwork, Ect.Compute.Runtime.ComputeDevice? device = null)
    {
        _batchSize = batchSize;
        _device = device ?? Ect.Compute.Runtime.ComputeDevice.Cpu;
        _scratchDir = scratchDir;
        Directory.CreateDirectory(scratchDir);
        Ect.Compute.Runtime.LibTorchBackends.Configure(); // no NNPACK: its "Unsupported hardware" line per convolution
        torch.set_num_threads(threads);
        torch.random.manual_seed(seed); // weight initialisation
        Net = newNetwork();
        EmaNet = newNetwork();
    }

    /// <summary>The trained network.</summary>
    protected TNet Net { get; }
    /// <summary>Its EMA (sampling, evaluators, checkpoints' <c>ema/</c>).</summary>
    protected TNet EmaNet { get; }

    /// <summary>The step of the current phase.</summary>
    protected TStep CurrentStep => _step ?? throw new InvalidOperationException("SetPhase first");

    /// <summary>The step of the current phase, for tests that inspect where its tensors live (DevicePlacementTests).</summary>
    internal TStep StepForInspection => CurrentStep;

    /// <summary>The step of <paramref name="phase"/>; <paramref name="fromPretrain"/>: pretraining came before it in this process.</summary>
    protected abstract TStep CreateStep(string phase, bool fromPretrain);

    public void SetPhase(string phase)
    {
        if (phase == _phase) return;
        var fromPretrain = _phase == Phases.Pretrain && _step != null;
        _step?.Dispose();
        _step = CreateStep(phase, fromPretrain);
        _step.Parallel = _parallel;
        _phase = phase;
    }

    /// <summary>
    /// This process's rank in a data-parallel job (Distributed/): each step trains this rank's shard of the batch and
    /// sums the gradients over the ranks. Null: the whole batch, as one process.
    /// </summary>
    public DataParallel? Parallel
    {
        get => _parallel;
        set { _parallel = value; if (_step != null) _step.Parallel = value; }
    }

    /// <summary>The phase set last (null before the first <see cref="SetPhase"/>).</summary>
    public string? Phase => _phase;

    /// <summary>The stage and learning rate in effect (set, or restored by a checkpoint load).</summary>
    public int CurrentStage => CurrentStep.Stage;
    public double CurrentLearningRate => CurrentStep.LearningRate;

    /// <summary>Steps the current phase's step has completed (restored by a checkpoint load).</summary>
    public long StepIndex => CurrentStep.StepIndex;

    /// <summary>The trained network's parameters (not the EMA's).</summary>
    public IEnumerable<TorchSharp.Modules.Parameter> Parameters => Net.parameters();

    /// <summary>The whole training state as bytes (weights, EMA, optimizer, RNG, counters): rank 0 broadcasts it so every rank starts identical.</summary>
    public byte[] StateBytes() => TrainState.ToBytes(CurrentStep);

    /// <summary>Restores the state <see cref="StateBytes"/> gave (after <see cref="SetPhase"/> with the sender's phase).</summary>
    public void LoadStateBytes(byte[] state, string source) => TrainState.Load(state, source, CurrentStep);

    public void SetStage(int stage) => CurrentStep.SetStage(stage);
    public void SetLearningRate(double lr) => CurrentStep.SetLearningRate(lr);

    public EngineStepResult Step(Batch batch)
    {
        var b = (ImageBatch)batch.Payload;
        // The batch is assembled on the host; on another device it is copied there (the CPU path makes no copy).
        using var deviceScope = _device.IsCpu ? null : NewDisposeScope();
        var images = _device.IsCpu ? b.Images : b.Images.to(_device.Device);
        var labels = _device.IsCpu ? b.Labels : b.Labels?.to(_device.Device);
        StepStatistics s;
        if (_parallel is { } dp && images.shape[0] != dp.ShardSize(_batchSize))
        {
            // This rank's shard of the global batch: images [rank * B/K, (rank + 1) * B/K). A data-parallel source
            // (DatasetBatchSource.Shard) assembles only those; a whole batch is cut here.
            int shard = dp.ShardSize(_batchSize);
            using var scope = NewDisposeScope();
            s = CurrentStep.Step(images.narrow(0, (long)dp.Rank * shard, shard), labels?.narrow(0, (long)dp.Rank * shard, shard));
        }
        else s = CurrentStep.Step(images, labels);
        AfterStep(s);
        return new EngineStepResult(s.LossMean, batch.Count);
    }

    /// <summary>What an engine does on the trainer thread after each step (nothing by default).</summary>
    protected virtual void AfterStep(StepStatistics statistics) { }

    /// <summary>The checkpoint's metadata: the trainer's <paramref name="metadata"/> and what describes the network.</summary>
    protected abstract IReadOnlyDictionary<string, string> CheckpointMetadata(IReadOnlyDictionary<string, string> metadata);

    public ICheckpointImage Capture(IReadOnlyDictionary<string, string> metadata)
    {
        var path = Path.Combine(_scratchDir, $".capture-{Guid.NewGuid():N}");
        TrainState.Save(path, CurrentStep, CheckpointMetadata(metadata));
        return new CapturedFile(path);
    }

    private sealed class CapturedFile(string path) : ICheckpointImage
    {
        private bool _moved;
        public void WriteTo(string target) { File.Move(path, target, overwrite: true); _moved = true; }
        public void Dispose() { if (!_moved) try { File.Delete(path); } catch (IOException) { } }
    }

    public virtual IReadOnlyDictionary<string, string> LoadCheckpoint(string path) => TrainState.Load(path, CurrentStep);

    public abstract IEvaluationModel CaptureEma();

    public string WeightsDigest() => StateDigest.Compute(Net);
    public string EmaDigest() => StateDigest.Compute(EmaNet);

    public virtual void Dispose()
    {
        _step?.Dispose();
        Net.Dispose();
        EmaNet.Dispose();
    }
}
