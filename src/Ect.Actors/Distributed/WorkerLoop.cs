using Akka.Configuration;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Compute.Training;

namespace Ect.Actors.Distributed;

/// <summary>
/// A rank > 0 of a data-parallel job: no coordinator, journal, control endpoint, evaluators or display; it writes
/// nothing to the run directory. It follows rank 0's decisions (<see cref="Decision"/>) in order: builds the engine
/// rank 0 describes, loads the state rank 0 sends, takes every step rank 0 takes on its own shard of the batch (the
/// gradient all-reduce inside the step is where the ranks meet), and answers digest checks. Waiting for the next
/// decision (a paused run, an evaluation on rank 0) sleeps between polls. A rank 0 that dies ends the job through
/// mpirun; an mpirun that dies ends this rank through <see cref="Ect.Mpi.ParentWatch"/>.
/// </summary>
public sealed class WorkerLoop(RankLink link, TextWriter log)
{
    private readonly int _rank = link.World.Rank;
    private TorchTrainingEngine? _engine;
    private string? _scratch;
    private int? _stage;
    private double _lr = double.NaN;

    /// <summary>Runs until rank 0 sends Finish; returns rank 0's exit code (for the log; this rank exits 0 after a clean finish).</summary>
    public int Run(TimeSpan idleSleep)
    {
        try
        {
            while (true)
            {
                var (decision, payload) = link.Receive(idleSleep);
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
                        link.World.AllReduceSum(flags);
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

    private TorchTrainingEngine Engine => _engine ?? throw new InvalidDataException($"rank {_rank}: rank 0 sent a step before describing the engine");

    /// <summary>Fault injection (ect.distributed.test-diverge-rank): this rank's weights leave rank 0's, as a faulty machine's would.</summary>
    private void Diverge()
    {
        using var noGrad = TorchSharp.torch.no_grad();
        var p = Engine.Parameters.First();
        using (var perturbation = TorchSharp.ScalarExtensionMethods.ToScalar(1e-3f)) p.add_(perturbation, Ect.Compute.ScalarConstants.One);
        log.WriteLine($"rank {_rank}: weights perturbed (ect.distributed.test-diverge-rank = {_rank})");
    }

    private int _divergeRank;

    private void BuildEngine(Packets.EngineSpec spec)
    {
        DisposeEngine();
        // No initial weights: rank 0's state arrives before the first step, so a worker needs no teacher file.
        var config = ConfigurationFactory.ParseString("ect.network.init = \"\"")
            .WithFallback(ConfigurationFactory.ParseString(spec.ConfigHocon)).WithFallback(EctConfiguration.Defaults());
        _divergeRank = config.GetInt(DataParallelLaunch.TestDivergeRankKey, 0);
        var settings = RunSettings.From(config, checkData: false);
        // Capture() never runs here, but the engine wants a scratch folder: one outside the run directory.
        _scratch = Directory.CreateTempSubdirectory($"ect-rank{_rank}-").FullName;
        _engine = Engines.TorchEngine(settings, spec.Resolution, spec.Channels, spec.LabelDim, _scratch);
        _engine.Parallel = new DataParallel(_rank, link.World.Size, new MpiGradientSum(link.World));
        _stage = null; _lr = double.NaN;
    }

    private void Step(byte[] payload)
    {
        var (spec, images) = Packets.Step(payload);
        using var batch = new Batch(images, (int)images.Images.shape[0], "");
        if (Engine.Phase != spec.Phase) Engine.SetPhase(spec.Phase);
        if (_stage != spec.Stage) { Engine.SetStage(spec.Stage); _stage = spec.Stage; }
        if (!spec.LearningRate.Equals(_lr)) { Engine.SetLearningRate(spec.LearningRate); _lr = spec.LearningRate; }
        Engine.Step(batch);
    }

    private void DisposeEngine()
    {
        // What this rank ends with, beside rank 0's "weights sha256 ..." line: equal digests show the ranks agree.
        if (_engine is { Phase: not null } e)
            log.WriteLine($"rank {_rank}: weights sha256 {e.WeightsDigest()}, ema sha256 {e.EmaDigest()}");
        _engine?.Dispose();
        _engine = null;
        if (_scratch != null) try { Directory.Delete(_scratch, recursive: true); } catch (IOException) { }
        _scratch = null;
    }
}
