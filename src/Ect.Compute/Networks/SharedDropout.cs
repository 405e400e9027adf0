using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ect.Compute.Networks;

/// <summary>
/// ECT's two passes (f_t with grad, f_r without) share one dropout mask per layer. The reference gets that by saving
/// the global RNG state before f_t and restoring it before f_r, so every mask is drawn twice. On the CPU a mask is
/// drawn by libtorch's serial Bernoulli kernel (one 64-bit draw per element, one thread: the MKL path is Intel-only),
/// ~8% of a bench-network ECT step at one thread (perf, session 13), more of the wall time at two. This records the
/// masks f_t draws and replays them in f_r: the same masks, hence the same bits, and the generator ends where the
/// reference's does (after f_r's draws = after f_t's draws), without the second draw.
/// <para>
/// A mask is exactly what <c>F.dropout</c> multiplies by on the CPU (libtorch's _dropout_impl: <c>noise =
/// empty_like(x).bernoulli_(1 - p); noise.div_(1 - p); x * noise</c>), so a recorded pass is F.dropout bit for bit,
/// forward and backward. CUDA tensors are not recorded (their F.dropout is the fused native_dropout, another draw
/// order): <see cref="Apply"/> falls back to F.dropout, and the loss keeps restoring the RNG state there.
/// </para>
/// One recorder per thread (the loss's thread); layers call <see cref="Apply"/> in forward order, which is the same in
/// both passes; the replay checks each mask's shape and that every mask was used.
/// </summary>
public sealed class SharedDropout : IDisposable
{
    [ThreadStatic] private static SharedDropout? _active;

    private readonly List<Tensor> _masks = new();
    private int _next = -1; // -1: recording; >= 0: replaying, the index of the next mask

    private SharedDropout() { }

    /// <summary>Starts recording the masks of the dropout layers that run on this thread until <see cref="Replay"/>.</summary>
    public static SharedDropout Record()
    {
        if (_active is not null) throw new InvalidOperationException("A SharedDropout recorder is already active on this thread.");
        return _active = new SharedDropout();
    }

    /// <summary>Masks recorded so far.</summary>
    public int Count => _masks.Count;

    /// <summary>From now on the dropout layers reuse the recorded masks, in the order they were drawn.</summary>
    public void Replay()
    {
        if (_next >= 0) throw new InvalidOperationException("SharedDropout.Replay called twice.");
        _next = 0;
    }

    /// <summary>After a replay: throws unless the replayed pass used every recorded mask (same layers ran).</summary>
    public void CheckAllReplayed()
    {
        if (_next != _masks.Count)
            throw new InvalidOperationException($"The second pass used {_next} of the {_masks.Count} dropout masks the first pass drew.");
    }

    /// <summary>
    /// Dropout of <paramref name="x"/> with probability <paramref name="p"/>: F.dropout when no recorder is active on
    /// this thread (or for a non-CPU tensor, p = 0, or not training), else F.dropout's mask recorded or replayed.
    /// </summary>
    public static Tensor Apply(Tensor x, double p, bool training)
    {
        var rec = _active;
        if (rec is null || !training || p == 0 || x.numel() == 0 || x.device_type != DeviceType.CPU)
            return F.dropout(x, p, training);
        if (p == 1) throw new ArgumentOutOfRangeException(nameof(p), "dropout 1 is not shared (F.dropout returns zeros without a draw)");
        if (rec._next < 0)
        {
            using var keep = (1 - p).ToScalar();
            var noise = empty_like(x);
            noise.bernoulli_(1 - p);
            noise.div_(keep);
            rec._masks.Add(noise.DetachFromDisposeScope());
            return x * noise;
        }
        if (rec._next >= rec._masks.Count)
            throw new InvalidOperationException($"The second pass asks for dropout mask {rec._next + 1}; the first pass drew {rec._masks.Count}.");
        var mask = rec._masks[rec._next];
        if (!mask.shape.SequenceEqual(x.shape))
            throw new InvalidOperationException($"Dropout mask {rec._next + 1} has shape [{string.Join(",", mask.shape)}]; the second pass gives [{string.Join(",", x.shape)}].");
        rec._next++;
        return x * mask;
    }

    public void Dispose()
    {
        if (ReferenceEquals(_active, this)) _active = null;
        foreach (var m in _masks) m.Dispose();
        _masks.Clear();
    }
}
