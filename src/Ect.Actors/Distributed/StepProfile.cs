using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Ect.Actors.Distributed;

/// <summary>The parts of a data-parallel step cycle that <see cref="StepProfile"/> times on each rank.</summary>
internal enum StepPart
{
    /// <summary>Rank 0: the trainer and daemon between two engine steps (stats, progress, messages). A worker: handling a decision other than a step.</summary>
    Outside,
    /// <summary>A worker: waiting for rank 0's next decision (MPI_Ibcast polled with short sleeps).</summary>
    PacketWait,
    /// <summary>Rank 0: sending the step's decision (and a state sync).</summary>
    PacketSend,
    /// <summary>Assembling this rank's shard of the batch (indices, decode/copy, flips).</summary>
    Assembly,
    /// <summary>Forward and backward passes (and the flat gradient buffer's copy).</summary>
    ForwardBackward,
    /// <summary>Meeting before the all-reduce (<see cref="StepWatch.Meet"/>): rank 0 waits for the workers' notes; a worker sends its note.</summary>
    NoteWait,
    /// <summary>MPI_Allreduce of the gradient bucket (waiting for the other ranks included).</summary>
    AllReduce,
    /// <summary>Gradients back from the bucket, gradient cleaning, optimizer, EMA, loss statistics.</summary>
    Update,
    /// <summary>The digest comparison every ect.distributed.digest-every steps.</summary>
    Digest,
}

/// <summary>
/// Where a rank's wall time goes, step by step (issue 20: why two ranks were slower than one). A lap timer: each
/// <see cref="Lap"/> charges the time since the previous lap to one <see cref="StepPart"/>, so the parts of a cycle add
/// up to its wall time; <see cref="EndStep"/> closes a step's row. The first <see cref="Warmup"/> steps (start-up, JIT)
/// are left out. Costs a timestamp per lap; one thread (the trainer's on rank 0, the main thread on a worker).
/// <see cref="Summary"/> is the line the bench script reads: mean ms per step and share of each part.
/// </summary>
internal sealed class StepProfile(int rank, int size)
{
    public const int Warmup = 3;
    private static readonly int Parts = Enum.GetValues<StepPart>().Length;

    private readonly List<long[]> _steps = [];
    private long[] _current = new long[Parts];
    private long _last = Stopwatch.GetTimestamp();
    private int _seen;

    /// <summary>Charges the time since the previous lap to <paramref name="part"/>.</summary>
    public void Lap(StepPart part)
    {
        long now = Stopwatch.GetTimestamp();
        _current[(int)part] += now - _last;
        _last = now;
    }

    /// <summary>Ends the current step's row (after its last lap).</summary>
    public void EndStep()
    {
        if (++_seen > Warmup) _steps.Add(_current);
        _current = new long[Parts];
    }

    public int Steps => _steps.Count;

    /// <summary>Mean milliseconds per step of <paramref name="part"/> over the profiled steps.</summary>
    public double MeanMs(StepPart part) =>
        _steps.Count == 0 ? 0 : _steps.Average(s => s[(int)part]) * 1000.0 / Stopwatch.Frequency;

    /// <summary>
    /// <c>data-parallel profile: rank R of K (P CPU(s) in its affinity mask), N steps, C ms per step: outside 1.0 ms 0.5%, packet-wait ...</c>: each
    /// part's mean ms per step and its share of the step cycle (parts that never took time are left out).
    /// </summary>
    public string Summary()
    {
        var ms = Enum.GetValues<StepPart>().Select(p => (Part: p, Ms: MeanMs(p))).ToList();
        double total = ms.Sum(x => x.Ms);
        var sb = new StringBuilder(string.Create(CultureInfo.InvariantCulture,
            $"data-parallel profile: rank {rank} of {size} ({Environment.ProcessorCount} CPU(s) in its affinity mask), {_steps.Count} steps, {total:F1} ms per step:"));
        foreach (var (part, m) in ms)
            if (m > 0)
                sb.Append(CultureInfo.InvariantCulture, $" {Name(part)} {m:F1} ms {100 * m / Math.Max(total, 1e-12):F1}%,");
        return sb.ToString().TrimEnd(',');
    }

    /// <summary>The part's name in <see cref="Summary"/>: kebab case (<c>forward-backward</c>).</summary>
    public static string Name(StepPart part)
    {
        var s = part.ToString();
        var sb = new StringBuilder();
        for (int i = 0; i < s.Length; i++)
        {
            if (i > 0 && char.IsUpper(s[i])) sb.Append('-');
            sb.Append(char.ToLowerInvariant(s[i]));
        }
        return sb.ToString();
    }
}
