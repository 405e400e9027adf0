using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Compute.Training;
using Ect.Data;

namespace Ect.Actors.Distributed;

/// <summary>
/// Rank 0's engine in a data-parallel job: the torch engine, plus a broadcast of each decision to the other ranks
/// before it is taken, so they take it too (the daemon above it, coordinator and trainer, is the single-process one).
/// Before the first step after a fresh start or a checkpoint load, the whole training state goes to every rank (as
/// DDP broadcasts the parameters), so a worker never needs a checkpoint file. Every step: phase, stage, learning
/// rate and where the global batch starts in the sampler's order (a few dozen bytes); every rank opened the data set
/// itself and assembles its own shard (DatasetBatchSource.Shard), trains on it, and the gradients are summed
/// (TrainStep). Before the sum the ranks meet (<see cref="StepWatch"/>): a worker stuck in the step is named. Every
/// <see cref="DigestEvery"/> steps the ranks compare weight+EMA digests; a difference throws
/// <see cref="RanksDivergedException"/>, which ends the run (the trainer reports it, the coordinator journals it).
/// </summary>
internal sealed class DataParallelEngine : ITrainingEngine, IDescribed
{
    private readonly IDataParallelEngine _inner;
    private readonly RankLink _link;
    private bool _needsSync = true, _disposed;
    private readonly MpiGradientSum _sum;
    private readonly StepWatch _watch;
    private readonly System.Diagnostics.Stopwatch _stepTime = new();
    private readonly StepProfile _profile;
    private readonly DatasetBatchSource? _source;

    public DataParallelEngine(IDataParallelEngine inner, RankLink link, Packets.EngineSpec spec, int digestEvery, TimeSpan stepTimeout, DatasetBatchSource? source = null)
    {
        _inner = inner;
        _link = link;
        _source = source;
        _watch = new StepWatch(link.World, stepTimeout);
        _profile = new StepProfile(0, link.World.Size);
        _sum = new MpiGradientSum(link.World, _watch, _profile);
        DigestEvery = digestEvery;
        lock (_link.Gate)
        {
            _link.Send(Decision.Engine, Packets.Engine(spec));
            _inner.Parallel = new DataParallel(0, link.World.Size, _sum);
        }
    }

    public int DigestEvery { get; }
    public int WorldSize => _link.World.Size;

    public string Description => $"{(_inner as IDescribed)?.Description}; data-parallel over {_link.World.Size} ranks (Open MPI), each training 1/{_link.World.Size} of every batch";

    public void SetPhase(string phase) => _inner.SetPhase(phase);
    public void SetStage(int stage) => _inner.SetStage(stage);
    public void SetLearningRate(double lr) => _inner.SetLearningRate(lr);

    public EngineStepResult Step(Batch batch)
    {
        _profile.Lap(StepPart.Outside);
        lock (_link.Gate)
        {
            var phase = _inner.Phase ?? throw new InvalidOperationException("SetPhase first");
            if (_needsSync)
            {
                _link.Send(Decision.Sync, Packets.Sync(phase, _inner.StateBytes()));
                _needsSync = false;
            }
            _watch.Begin(phase, _inner.StepIndex + 1);
            _link.Send(Decision.Step, Packets.Step(new Packets.StepSpec(phase, _inner.CurrentStage, _inner.CurrentLearningRate, ((ImageBatch)batch.Payload).Start)));
            _profile.Lap(StepPart.PacketSend);
            _stepTime.Start();
            EngineStepResult result;
            try { result = _inner.Step(batch); }
            catch (RankHungException hung)
            {
                // MPI is left mid-step (the stuck rank never met us): no further MPI call but MPI_Abort. The trainer
                // reports it, the coordinator journals it (RunInterrupted), and DataParallelLaunch aborts the job.
                _link.Break(hung.Message);
                Console.Error.WriteLine($"rank 0 of {_link.World.Size}: {hung.Message}; the run journals it and ends the job.");
                Console.Error.Flush();
                throw;
            }
            catch (Exception e)
            {
                // The other ranks are inside this step's all-reduce or about to enter it: a rollback here would send
                // them decisions they cannot receive. End the whole job; a restart resumes from the last checkpoint.
                Console.Error.WriteLine($"rank 0 of {_link.World.Size}: the step failed inside a data-parallel step ({e.GetType().Name}: {e.GetBaseException().Message}); " +
                                        "ending the job (MPI_Abort). Start it again to resume from the last checkpoint.");
                Console.Error.Flush();
                _link.World.Abort(1);
                throw;
            }
            finally { _stepTime.Stop(); }
            _profile.Lap(StepPart.Update);
            if (DigestEvery > 0 && _inner.StepIndex % DigestEvery == 0) CompareDigests();
            _profile.Lap(StepPart.Digest);
            _profile.EndStep();
            return result;
        }
    }

    /// <summary>Rank 0 sends its digest; each rank compares and flags its slot; one all-reduce tells everyone which ranks differ.</summary>
    private void CompareDigests()
    {
        var digest = _inner.WeightsDigest() + ":" + _inner.EmaDigest();
        _link.Send(Decision.Digest, Packets.Digest(digest));
        var flags = new long[_link.World.Size];
        try { _watch.Meet(StepWatch.DigestTag); }
        catch (RankHungException hung) { _link.Break(hung.Message); throw; }
        _link.World.AllReduceSum(flags);
        var differ = Enumerable.Range(0, flags.Length).Where(r => flags[r] != 0).ToList();
        if (differ.Count > 0) throw new RanksDivergedException(_inner.StepIndex, differ, _link.World.Size);
    }

    public ICheckpointImage Capture(IReadOnlyDictionary<string, string> metadata) =>
        _inner.Capture(new Dictionary<string, string>(metadata) { ["world-size"] = _link.World.Size.ToString(System.Globalization.CultureInfo.InvariantCulture) });

    public IReadOnlyDictionary<string, string> LoadCheckpoint(string path)
    {
        var meta = _inner.LoadCheckpoint(path);
        _needsSync = true;
        return meta;
    }

    public IEvaluationModel CaptureEma() => _inner.CaptureEma();
    public string WeightsDigest() => _inner.WeightsDigest();
    public string EmaDigest() => _inner.EmaDigest();

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        // What the gradient sum cost (the bench script reads this line): MPI_Allreduce's wall time, waits included.
        if (_sum.Calls > 0)
            Console.WriteLine(System.FormattableString.Invariant(
                $"data-parallel: {_sum.Calls} all-reduce(s) of {_sum.Floats:N0} floats over {_link.World.Size} ranks, {_sum.Time.Elapsed.TotalMilliseconds / _sum.Calls:F1} ms each, {100 * _sum.Time.Elapsed.TotalSeconds / Math.Max(_stepTime.Elapsed.TotalSeconds, 1e-9):F1}% of rank 0's step time"));
        // Where rank 0's time went, part by part (the bench script prints each rank's line); its shards are assembled
        // by the data loader's thread, off the step's path.
        if (_profile.Steps > 0)
            Console.WriteLine(_profile.Summary() + (_source is { ShardsAssembled: > 0 } src
                ? System.FormattableString.Invariant($"; data loader thread: assembly {src.AssemblyTime.TotalMilliseconds / src.ShardsAssembled:F2} ms per shard") : ""));
        lock (_link.Gate)
            if (!_link.Finished && _link.Broken is null) _link.Send(Decision.DisposeEngine, []);
        _inner.Dispose();
    }
}

/// <summary>The ranks' weights or EMA differ: data-parallel training lost bit-identity (hardware, a library, a bug).</summary>
public sealed class RanksDivergedException(long engineStep, IReadOnlyList<int> ranks, int worldSize)
    : Exception($"ranks {string.Join(", ", ranks)} of {worldSize} hold weights/EMA that differ from rank 0's (digest check after engine step {engineStep} of the phase)")
{
    public IReadOnlyList<int> Ranks { get; } = ranks;
    public int WorldSize { get; } = worldSize;
}

/// <summary>The gradient sum of TrainStep over MPI_COMM_WORLD (one in-place MPI_Allreduce).</summary>
internal sealed class MpiGradientSum(Ect.Mpi.MpiWorld world, StepWatch watch, StepProfile? profile = null) : IGradientSum
{
    /// <summary>Wall time of the meeting before MPI_Allreduce and of the all-reduce (waiting for the slowest rank included), calls, floats per call.</summary>
    public System.Diagnostics.Stopwatch Time { get; } = new();
    public long Calls { get; private set; }
    public long Floats { get; private set; }

    public void SumInPlace(Span<float> buffer)
    {
        profile?.Lap(StepPart.ForwardBackward);
        Time.Start();
        try
        {
            watch.Meet(StepWatch.GradientTag);
            profile?.Lap(StepPart.NoteWait);
            world.AllReduceSum(buffer);
            profile?.Lap(StepPart.AllReduce);
        }
        finally { Time.Stop(); }
        Calls++;
        Floats = buffer.Length;
    }
}
