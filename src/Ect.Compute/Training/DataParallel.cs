using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ect.Compute.Training;

/// <summary>
/// Sums a flat float buffer over every rank of a data-parallel job, in place (MPI_Allreduce with MPI_SUM behind it
/// in Ect.Actors; Ect.Compute itself knows no MPI). Every rank calls it once per step with a buffer of the same length.
/// </summary>
public interface IGradientSum
{
    void SumInPlace(Span<float> buffer);
}

/// <summary>
/// One rank's part of a data-parallel step (DDP's shape): the configured batch size is the global batch, split into
/// <see cref="Size"/> equal shards; this rank trains on shard <see cref="Rank"/> (images [Rank * B/K, (Rank + 1) * B/K)).
/// Each rank's loss is scaled by the global batch size, so the summed gradient equals a single process's gradient of
/// the whole batch (up to float summation order). Noise and dropout: rank 0 draws from the step's own RNG stream
/// (as a plain run does, so a 1-rank job is bit-identical to a plain run), rank r > 0 from a generator seeded by
/// (seed, step, rank), which needs no state of its own to resume.
/// </summary>
public sealed record DataParallel(int Rank, int Size, IGradientSum Sum)
{
    public int ShardSize(int globalBatch) => globalBatch / Size;

    /// <summary>Refuses a global batch that K ranks cannot split evenly, naming both numbers.</summary>
    public static void CheckDivisible(int globalBatch, int size, string batchKey)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), size, "world size must be >= 1");
        if (globalBatch % size != 0)
            throw new ArgumentException(
                $"{batchKey} = {globalBatch} cannot be split into {size} equal shards (one per rank): {globalBatch} is not divisible by {size}. " +
                $"Set {batchKey} to a multiple of {size} (e.g. {Math.Max(size, globalBatch / size * size)}), or run with a number of ranks that divides {globalBatch}.");
    }

    /// <summary>
    /// Sums every gradient of <paramref name="parameters"/> over the ranks with one all-reduce of a flat float32 buffer
    /// (the gradients in parameter order, then this rank's loss sum, sum of squares and count) and writes the sums back
    /// into the gradients; returns the whole batch's loss sum, sum of squares and count. Each rank's loss must be scaled
    /// by the global batch size, so the sum is the whole batch's gradient. TrainStep's and Edm2TrainStep's path.
    /// </summary>
    public (double Sum, double SumSq, double Count) SumOverRanks(IEnumerable<Parameter> parameters, Tensor losses)
    {
        using var scope = NewDisposeScope();
        var grads = parameters.Where(p => p.grad is not null).Select(p => p.grad!).ToArray();
        foreach (var g in grads)
            if (g.dtype != ScalarType.Float32) throw new NotSupportedException($"data-parallel training sums float32 gradients; a gradient is {g.dtype}.");
        var l64 = losses.detach().to(float64);
        var stats = tensor(new[] { (float)l64.sum().item<double>(), (float)l64.Squared().sum().item<double>(), (float)l64.numel() });
        // MPI reads and writes host memory: the flat bucket is gathered on the gradients' device, copied once to a host
        // buffer (pinned when that device is CUDA, so the copies are DMA) and, summed, copied back into each gradient.
        // On the CPU the bucket is the host buffer (no copy): the same bits as before.
        var onHost = grads.Length == 0 || grads[0].device_type == TorchSharp.DeviceType.CPU;
        var bucket = grads.Length == 0 ? null : cat(grads.Select(g => g.reshape(-1)).ToArray(), 0);
        var hostBucket = bucket is null ? null : onHost ? bucket : bucket.to(CPU).pin_memory();
        var flat = (hostBucket is null ? stats : cat([hostBucket, stats], 0)).contiguous();
        Sum.SumInPlace(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(flat.bytes));
        long off = 0;
        using (no_grad())
            foreach (var g in grads)
            {
                g.copy_(flat.narrow(0, off, g.numel()).view(g.shape));
                off += g.numel();
            }
        var s = flat.narrow(0, off, 3).to(float64);
        return (s[0].item<double>(), s[1].item<double>(), s[2].item<double>());
    }

    /// <summary>
    /// The step's loss mean and standard deviation (population): of <paramref name="losses"/>, or over K &gt; 1 ranks the
    /// whole batch's from <see cref="SumOverRanks"/>' sums (summed in float32 with the gradients: what a single process
    /// would report, to float precision).
    /// </summary>
    public static (double Mean, double Std) LossMoments(Tensor losses, DataParallel? parallel, (double Sum, double SumSq, double Count)? overRanks)
    {
        if (parallel is { Size: > 1 } && overRanks is { } g)
        {
            double m = g.Sum / g.Count;
            return (m, Math.Sqrt(Math.Max(0, g.SumSq / g.Count - m * m)));
        }
        using var scope = NewDisposeScope();
        var l64 = losses.detach().to(float64);
        double mean = l64.mean().item<double>();
        return (mean, l64.Minus(mean).Squared().mean().sqrt().item<double>());
    }

    /// <summary>The seed of rank <paramref name="rank"/>'s noise at step <paramref name="step"/> (SplitMix64 of the three).</summary>
    public static ulong RankSeed(long seed, long step, int rank)
    {
        ulong z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)step * 0xBF58476D1CE4E5B9UL ^ (ulong)rank * 0x94D049BB133111EBUL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return (z ^ (z >> 31)) & 0x7FFF_FFFF_FFFF_FFFFUL; // torch seeds are int64 in TorchSharp's manual_seed
    }
}
