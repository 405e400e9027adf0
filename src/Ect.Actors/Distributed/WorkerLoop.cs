using Akka.Configuration;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Compute.Training;

namespace Ect.Actors.Distributed;

/// <summary>
/// A rank > 0 of a data-parallel job: no coordinator, journal, control endpoint, evaluators or display; it writes
/// nothing to the run directory. It follows rank 0's decisions (<see cref="Decision"/>) in order: builds the engine
/// rank 0 describes and opens the data set itself (<see cref="DataShard"/>), loads the state rank 0 sends, takes every
/// step rank 0 takes on its own shard of the batch, assembled here from where rank 0 says the batch starts (the
/// gradient all-reduce inside the step is where the ranks meet, after a note to rank 0 that this rank got there:
/// <see cref="StepWatch"/>), and answers digest checks. Waiting for the next
/// decision (a paused run, an evaluation on rank 0) sleeps between polls. A rank 0 that dies ends the job through
/// mpirun; an mpirun that dies ends this rank through <see cref="Ect.Mpi.ParentWatch"/>.
/// </summary>
public sealed class WorkerLoop(RankLink link, TextWriter log)
{
    private readonly int _rank = link.World.Rank;
    private IDataParallelEngine? _engine;
    private DatasetBatchSource? _data;
    private StepWatch? _watch;
    private WorkerWatchdog? _watchdog;
    private string? _scratch;
    private int? _stage;
    private double _lr = double.NaN;
    private StepProfile? _profile;
    private ShardAhead? _ahead;

    /// <summary>Runs until rank 0 sends Finish; returns rank 0's exit code (for the log; this rank exits 0 after a clean finish).</summary>
    public int Run(TimeSpan idleSleep)
    {
        try
        {
            while (true)
            {
                _watchdog?.Idle();
                _profile?.Lap(StepPart.Outside);
                var (decision, payload) = link.Receive(idleSleep);
                _profile?.Lap(StepPart.PacketWait);
                _watchdog?.Busy(decision == Decision.Step ? $"step {(_engine?.StepIndex ?? 0) + 1} of the {_engine?.Phase} phase" : $"rank 0's {decision} decision");
                switch (decision)
                {
                    case Decision.Engine: BuildEngine(Packets.Engine(payload)); break;
                    case Decision.Sync:
                    {
                        var (phase, state) = Packets.Sync(payload);
                        Engine.SetPhase(phase);
                        Engine.LoadStateBytes(state, $"the training state rank 0 broadcast to rank {_rank}");
                        // The loaded state carries stage and learning rate; the next step's decision sets them again.
                        _stage = null; _lr = double.NaN;
                        if (_divergeRank == _rank) Diverge();
                        break;
                    }
                    case Decision.Step: Step(payload); break;
                    case Decision.Digest:
                    {
                        var mine = Engine.WeightsDigest() + ":" + Engine.EmaDigest();
                        var flags = new long[link.World.Size];
                        if (mine != Packets.Digest(payload)) flags[_rank] = 1;
                        Watch.Begin(Engine.Phase!, Engine.StepIndex);
                        Watch.Meet(StepWatch.DigestTag);
                        link.World.AllReduceSum(flags);
                        _profile?.Lap(StepPart.Digest);
                        if (flags[_rank] != 0) log.WriteLine($"rank {_rank}: weights/EMA differ from rank 0's (rank 0 ends the run)");
                        break;
                    }
                    case Decision.DisposeEngine: DisposeEngine(); break;
                    case Decision.Finish: return BitConverter.ToInt32(payload);
                }
            }
        }
        finally { DisposeEngine(); }
    }

    private IDataParallelEngine Engine => _engine ?? throw new InvalidDataException($"rank {_rank}: rank 0 sent a step before describing the engine");
    private StepWatch Watch => _watch ?? throw new InvalidDataException($"rank {_rank}: rank 0 sent a step before describing the engine");
    private ShardAhead Ahead => _ahead ?? throw new InvalidDataException($"rank {_rank}: rank 0 sent a step before describing the engine");

    /// <summary>Fault injection (ect.distributed.test-diverge-rank): this rank's weights leave rank 0's, as a faulty machine's would.</summary>
    private void Diverge()
    {
        using var noGrad = TorchSharp.torch.no_grad();
        var p = Engine.Parameters.First();
        using (var perturbation = TorchSharp.ScalarExtensionMethods.ToScalar(1e-3f)) p.add_(perturbation, Ect.Compute.ScalarConstants.One);
        log.WriteLine($"rank {_rank}: weights perturbed (ect.distributed.test-diverge-rank = {_rank})");
    }

    private int _divergeRank, _hangRank;
    private long _hangStep;

    private void BuildEngine(Packets.EngineSpec spec)
    {
        DisposeEngine();
        // No initial weights: rank 0's state arrives before the first step, so a worker needs no teacher file. The data
        // set at rank 0's full path; no EDM2 power-function EMA snapshots (rank 0 writes them; a worker writes nothing).
        var config = ConfigurationFactory.ParseString(
                $"ect.network.init = \"\"\nect.data.path = {System.Text.Json.JsonSerializer.Serialize(spec.DataPath)}\nect.edm2.phema-snapshot-every-steps = 0")
            .WithFallback(ConfigurationFactory.ParseString(spec.ConfigHocon)).WithFallback(EctConfiguration.Defaults());
        _divergeRank = config.GetInt(DataParallelLaunch.TestDivergeRankKey, 0);
        _hangRank = config.GetInt(DataParallelLaunch.TestHangRankKey, 0);
        _hangStep = config.GetLong(DataParallelLaunch.TestHangStepKey, 2);
        var settings = RunSettings.From(config, checkData: false);
        var timeout = DataParallelLaunch.StepTimeout(config);
        _watch = new StepWatch(link.World, timeout);
        if (timeout > TimeSpan.Zero && _watchdog is null) _watchdog = new WorkerWatchdog(_rank, link.World.Size, timeout);
        // Capture() never runs here, but the engine wants a scratch folder (as its run directory): one outside the run directory.
        _scratch = Directory.CreateTempSubdirectory($"ect-rank{_rank}-").FullName;
        // The engine rank 0 runs (SongUNet or EDM2) and the data set, opened here and checked against rank 0's.
        var (engine, source) = DataShard.OpenEngine(settings, spec, _rank, _scratch);
        _data = DataShard.Check(source, spec, _rank, link.World.Size);
        _ahead = new ShardAhead(_data);
        _engine = engine as IDataParallelEngine ?? throw new InvalidDataException($"rank {_rank}: the engine {engine.GetType().Name} has no data-parallel path");
        _profile = new StepProfile(_rank, link.World.Size);
        _engine.Parallel = new DataParallel(_rank, link.World.Size, new MpiGradientSum(link.World, _watch, _profile));
        _stage = null; _lr = double.NaN;
    }

    private void Step(byte[] payload)
    {
        var spec = Packets.Step(payload);
        using var batch = Ahead.Take(spec.BatchStart);
        _profile?.Lap(StepPart.Assembly);
        if (Engine.Phase != spec.Phase) Engine.SetPhase(spec.Phase);
        if (_stage != spec.Stage) { Engine.SetStage(spec.Stage); _stage = spec.Stage; }
        if (!spec.LearningRate.Equals(_lr)) { Engine.SetLearningRate(spec.LearningRate); _lr = spec.LearningRate; }
        Watch.Begin(spec.Phase, Engine.StepIndex + 1);
        if (_hangRank == _rank && Engine.StepIndex + 1 == _hangStep)
        {
            // Fault injection (ect.distributed.test-hang-rank): alive but stuck inside a step, as a deadlocked library would be.
            log.WriteLine($"rank {_rank}: hanging inside step {_hangStep} of the {spec.Phase} phase ({DataParallelLaunch.TestHangRankKey} = {_rank})");
            log.Flush();
            Thread.Sleep(Timeout.Infinite);
        }
        Engine.Step(batch);
        _profile?.Lap(StepPart.Update);
        Ahead.PrepareAfter(batch); // while rank 0 ends its step: the worker would only wait for its next decision
        _profile?.Lap(StepPart.Assembly);
        _profile?.EndStep();
    }

    private void DisposeEngine()
    {
        // What this rank ends with, beside rank 0's "weights sha256 ..." line: equal digests show the ranks agree.
        if (_engine is { Phase: not null } e)
            log.WriteLine($"rank {_rank}: weights sha256 {e.WeightsDigest()}, ema sha256 {e.EmaDigest()}");
        if (_profile is { Steps: > 0 } profile)
            log.WriteLine(profile.Summary() + $"; shards assembled ahead and used {_ahead?.Hits}, assembled on demand {_ahead?.Misses}");
        _profile = null;
        _engine?.Dispose();
        _engine = null;
        _ahead?.Dispose();
        _ahead = null;
        _data?.Dispose();
        _data = null;
        if (_scratch != null) try { Directory.Delete(_scratch, recursive: true); } catch (IOException) { }
        _scratch = null;
    }
}
