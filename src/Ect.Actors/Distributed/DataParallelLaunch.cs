using System.Globalization;
using System.Runtime.InteropServices;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Run;
using Ect.Compute.Training;
using Ect.Mpi;

namespace Ect.Actors.Distributed;

/// <summary>
/// `mpirun -np K ect train ...`: one run, data-parallel over K processes. Rank 0 runs the normal daemon (journal,
/// checkpoints, control endpoint, evaluators, display) with <see cref="DataParallelEngine"/> as its engine; ranks > 0
/// run a <see cref="WorkerLoop"/>. At the end rank 0 tells the workers to finish and every rank calls MPI_Finalize.
/// A worker that fails aborts the whole job (MPI_Abort), so no rank is left waiting in a collective.
/// </summary>
public sealed class DataParallelLaunch
{
    public const string DigestEveryKey = "ect.distributed.digest-every";
    /// <summary>Fault injection for tests: this rank (> 0) perturbs its weights after each state sync (0 = off).</summary>
    public const string TestDivergeRankKey = "ect.distributed.test-diverge-rank";
    /// <summary>ect.distributed.step-timeout-s: a step older than this with a worker not at its all-reduce ends the job (0 = never).</summary>
    public const string StepTimeoutKey = RankHungException.StepTimeoutKey;
    /// <summary>Fault injection for tests: this rank (> 0) sleeps forever inside step <see cref="TestHangStepKey"/> of a phase (0 = off).</summary>
    public const string TestHangRankKey = "ect.distributed.test-hang-rank";
    public const string TestHangStepKey = "ect.distributed.test-hang-step";

    private DataParallelLaunch(MpiWorld world) { World = world; Link = new RankLink(world); }

    public MpiWorld World { get; }
    public RankLink Link { get; }

    /// <summary>This process's launch when it is a rank of an mpirun job (set by <see cref="Run"/>), else null.</summary>
    public static DataParallelLaunch? Current { get; private set; }

    /// <summary>Runs this rank: <paramref name="rank0"/> (the normal `ect train`) on rank 0, the worker loop elsewhere.</summary>
    public static int Run(Func<int> rank0)
    {
        MpiWorld world;
        try { world = MpiWorld.Init(); }
        catch (MpiException e) { Console.Error.WriteLine(e.Message); return 2; }
        // A SIGKILLed mpirun does not take its ranks with it: without this, rank 0 would keep the run lock.
        ParentWatch.Start(world.Rank, TimeSpan.FromMilliseconds(250));
        var launch = Current = new DataParallelLaunch(world);
        if (world.Rank == 0)
        {
            if (PartitionHint.For(Environment.GetEnvironmentVariable) is { } hint) Console.Error.WriteLine(hint);
            int code = 1;
            try { code = rank0(); }
            finally { launch.FinishWorkers(code); }
            world.Finalize();
            return code;
        }
        // mpirun forwards SIGTERM/SIGINT to every rank: the workers leave the stop to rank 0 (it finishes the step,
        // checkpoints and then sends Finish); a worker that died first would leave rank 0 inside an all-reduce.
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => c.Cancel = true);
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => c.Cancel = true);
        try
        {
            var rank0Code = new WorkerLoop(launch.Link, Console.Out).Run(TimeSpan.FromMilliseconds(IdlePollMs));
            world.Finalize();
            _ = rank0Code; // rank 0 reports the run's outcome (mpirun exits with it); this rank finished cleanly
            return 0;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"rank {world.Rank} of {world.Size} failed and ends the job: {e.GetType().Name}: {e.GetBaseException().Message}");
            Console.Error.Flush();
            world.Abort(1);
            return 1;
        }
    }

    /// <summary>A waiting worker's sleep between polls: the latency it adds to a decision, against the CPU a wait costs.</summary>
    private const int IdlePollMs = 2;

    /// <summary>
    /// Refuses (exit 2, before anything starts) what a K-rank job cannot run: a batch that K does not divide, the fake
    /// engine on several ranks, a bad digest interval or step timeout.
    /// </summary>
    public void Check(RunSettings s)
    {
        int k = World.Size;
        if (k > 1 && s.Engine != "torch")
            throw new ConfigurationException($"ect.run.engine = {s.Engine}: a data-parallel run (mpirun -np {k}) needs the torch engine; run the fake engine without mpirun or with -np 1.");
        try { DataParallel.CheckDivisible(s.BatchSize, k, "ect.data.batch-size"); }
        catch (ArgumentException e) { throw new ConfigurationException(e.Message + $" (mpirun -np {k})"); }
        DigestEvery(s.Config);
        StepTimeout(s.Config);
    }

    /// <summary>ect.distributed.step-timeout-s (seconds, > 0; 0 = never: TimeSpan.Zero).</summary>
    public static TimeSpan StepTimeout(Akka.Configuration.Config c)
    {
        double t;
        try { t = c.GetDouble(StepTimeoutKey, 1800); }
        catch (Exception) { throw new ConfigurationException($"{StepTimeoutKey} = {c.GetString(StepTimeoutKey)}: not a number of seconds (0 = never)."); }
        if (!double.IsFinite(t) || t < 0 || t > 7 * 24 * 3600)
            throw new ConfigurationException($"{StepTimeoutKey} = {c.GetString(StepTimeoutKey)}: must be 0 (never) or a number of seconds up to 604800 (a week); e.g. 1800.");
        return TimeSpan.FromSeconds(t);
    }

    private static int DigestEvery(Akka.Configuration.Config c)
    {
        int n;
        try { n = c.GetInt(DigestEveryKey, 100); }
        catch (Exception) { throw new ConfigurationException($"{DigestEveryKey} = {c.GetString(DigestEveryKey)}: not an integer (0 = never, N = every N steps)."); }
        if (n < 0) throw new ConfigurationException($"{DigestEveryKey} = {n}: must be >= 0 (0 = never, N = every N steps).");
        return n;
    }

    /// <summary>Rank 0's engine factory: <paramref name="torch"/>'s engine wrapped in a <see cref="DataParallelEngine"/>.</summary>
    public EngineFactory Rank0Factory(EngineFactory torch) => (s, runDir) =>
    {
        // The effective configuration (a continued run's recorded one): checked again, as the command line's was.
        DataParallel.CheckDivisible(s.BatchSize, World.Size, "ect.data.batch-size");
        var (engine, source) = torch(s, runDir);
        if (World.Size == 1 && engine is not IDataParallelEngine) return (engine, source);
        var inner = (IDataParallelEngine)engine;
        var data = (DatasetBatchSource)source;
        // Every rank opens the data set itself (rank 0's full path) and assembles only its shard of each batch.
        data.Shard = (0, World.Size);
        var spec = new Packets.EngineSpec(EctConfiguration.Render(s.Config), data.Resolution, data.Channels, s.UseLabels ? data.LabelDim : 0,
            Path.GetFullPath(s.DataPath), data.Dataset.Count, DataShard.Fingerprint(data.Dataset));
        return (new DataParallelEngine(inner, Link, spec, DigestEvery(s.Config), StepTimeout(s.Config), data), source);
    };

    /// <summary>Tells the workers the run is over (once; waits for a step in progress to end, at most a minute, then aborts the job).</summary>
    private void FinishWorkers(int code)
    {
        if (Link.Broken is { } why)
        {
            // A rank hung mid-step (journaled by the run): the collective it never joined cannot be finished.
            Console.Error.WriteLine($"rank 0: ending the job (MPI_Abort): {why}");
            Console.Error.Flush();
            World.Abort(code == 0 ? 1 : code);
        }
        if (!Monitor.TryEnter(Link.Gate, TimeSpan.FromSeconds(60)))
        {
            Console.Error.WriteLine("rank 0: the trainer still holds MPI a minute after the run ended; aborting the job.");
            World.Abort(code == 0 ? 1 : code);
        }
        try { if (!Link.Finished) Link.Send(Decision.Finish, Packets.Finish(code)); }
        finally { Monitor.Exit(Link.Gate); }
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"rank {World.Rank} of {World.Size}");
}
