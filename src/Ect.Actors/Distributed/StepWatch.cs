using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Ect.Mpi;

namespace Ect.Actors.Distributed;

/// <summary>
/// Hang detection (ect.distributed.step-timeout-s). A rank that is alive but stuck inside a step never reaches the
/// step's all-reduce, and a blocking MPI_Allreduce would wait for it forever without saying who is missing. So before
/// every all-reduce the ranks meet: each worker sends rank 0 a tiny point-to-point note (the step it is at), and rank 0
/// waits for all notes (testing without sleeping for <see cref="RankLink.WaitSpin"/>, then sleeping between polls),
/// until the step is <see cref="Timeout"/> old. A worker not heard from
/// by then is named in a <see cref="RankHungException"/> on rank 0's trainer (the run journals it and ends the job);
/// the all-reduce itself then starts only when every rank is there, so it finishes at once.
/// Rank 0 stuck (not a worker) is caught by the workers' own watchdog (<see cref="WorkerWatchdog"/>).
/// </summary>
internal sealed class StepWatch(MpiWorld world, TimeSpan timeout)
{
    /// <summary>Point-to-point tags of the notes before the gradient all-reduce and before the digest comparison.</summary>
    public const int GradientTag = 2001, DigestTag = 2002;

    private readonly Stopwatch _clock = new();

    /// <summary>How long a step may take on rank 0 before a worker not yet at its all-reduce counts as hung; Zero = wait forever.</summary>
    public TimeSpan Timeout { get; } = timeout;

    /// <summary>The step in progress: the TrainStep step index it will complete (every rank counts the same).</summary>
    public long Step { get; private set; }
    public string Phase { get; private set; } = "";

    /// <summary>A step begins (its clock starts: the deadline counts from here).</summary>
    public void Begin(string phase, long step)
    {
        Phase = phase;
        Step = step;
        _clock.Restart();
    }

    /// <summary>
    /// Every rank calls it right before a collective of the step (<paramref name="tag"/> says which): a worker sends its
    /// step to rank 0; rank 0 waits for every worker's note (throws <see cref="RankHungException"/> past the deadline, an
    /// <see cref="InvalidDataException"/> when a worker is at another step).
    /// </summary>
    public void Meet(int tag)
    {
        if (world.Rank != 0)
        {
            world.SendLong(Step, 0, tag);
            return;
        }
        if (world.Size == 1) return;
        var left = Timeout == TimeSpan.Zero ? TimeSpan.MaxValue : Timeout - _clock.Elapsed;
        var steps = new long[world.Size];
        if (!world.TryReceiveFromAll(tag, steps, left < TimeSpan.Zero ? TimeSpan.Zero : left, TimeSpan.FromMilliseconds(1), out var missing, RankLink.WaitSpin))
            throw new RankHungException(Phase, Step, missing, world.Size, Timeout, tag == DigestTag ? "the digest comparison" : "the gradient all-reduce");
        for (int r = 1; r < steps.Length; r++)
            if (steps[r] != Step)
                throw new InvalidDataException($"rank {r} of {world.Size} is at step {steps[r]} of the {Phase} phase, rank 0 at step {Step}: the ranks no longer take the same steps (a bug; start the run again to resume from the last checkpoint)");
    }
}

/// <summary>Workers that did not reach a collective of a step within ect.distributed.step-timeout-s: alive but stuck, or far slower than rank 0.</summary>
public sealed class RankHungException(string phase, long engineStep, IReadOnlyList<int> ranks, int worldSize, TimeSpan timeout, string where)
    : Exception(string.Create(CultureInfo.InvariantCulture,
        $"rank {string.Join(", ", ranks)} of {worldSize} did not reach {where} of step {engineStep} of the {phase} phase within {timeout.TotalSeconds:0.###} s ({StepTimeoutKey} = {timeout.TotalSeconds:0.###}): alive but stuck, or far slower than rank 0"))
{
    public const string StepTimeoutKey = "ect.distributed.step-timeout-s";
    public IReadOnlyList<int> Ranks { get; } = ranks;
    public int WorldSize { get; } = worldSize;
}

/// <summary>
/// A worker's own hang check: when handling one of rank 0's decisions takes longer than its limit (twice the step
/// timeout plus 30 s, so that rank 0, which measures from an earlier instant, names a stuck worker and journals it
/// first), something else is stuck, most likely rank 0 itself: the worker prints which step it was in and ends itself
/// with SIGKILL, so mpirun ends the whole job (MPI_Abort from this thread would break MPI_THREAD_SERIALIZED).
/// </summary>
internal sealed class WorkerWatchdog
{
    [DllImport("libc.so.6")] private static extern int getpid();
    [DllImport("libc.so.6")] private static extern int kill(int pid, int sig);

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _busySinceMs = -1;
    private volatile string _doing = "";

    public WorkerWatchdog(int rank, int size, TimeSpan stepTimeout)
    {
        Limit = stepTimeout * 2 + TimeSpan.FromSeconds(30);
        var thread = new Thread(() =>
        {
            while (true)
            {
                Thread.Sleep(500);
                var since = Interlocked.Read(ref _busySinceMs);
                if (since < 0 || _clock.ElapsedMilliseconds - since < Limit.TotalMilliseconds) continue;
                Console.Error.WriteLine(FormattableString.Invariant(
                    $"rank {rank} of {size}: {_doing} has not finished after {Limit.TotalSeconds:0} s (2 x {RankHungException.StepTimeoutKey} + 30 s); ") +
                    "another rank (most likely rank 0) is stuck. Ending this rank (SIGKILL), which ends the job; start it again to resume from the last checkpoint.");
                Console.Error.Flush();
                kill(getpid(), 9);
            }
        }) { IsBackground = true, Name = "ect-worker-watchdog" };
        thread.Start();
    }

    public TimeSpan Limit { get; }

    public void Busy(string doing) { _doing = doing; Interlocked.Exchange(ref _busySinceMs, _clock.ElapsedMilliseconds); }
    public void Idle() => Interlocked.Exchange(ref _busySinceMs, -1);
}
