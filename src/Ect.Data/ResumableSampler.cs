using System.Globalization;

namespace Ect.Data;

/// <summary>
/// Where a <see cref="ResumableSampler"/> stands: the epoch, and the position inside that epoch's permutation of
/// the next sample to hand out. Serialises to a short string for checkpoint metadata ("epoch=3;position=1280").
/// </summary>
public readonly record struct SamplerState(long Epoch, long Position)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"epoch={Epoch};position={Position}");

    /// <summary>Parses <see cref="ToString"/>'s form; throws <see cref="FormatException"/> with the bad text quoted.</summary>
    public static SamplerState Parse(string text)
    {
        long? epoch = null, position = null;
        foreach (var part in (text ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', 2);
            if (kv.Length == 2 && long.TryParse(kv[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= 0)
            {
                if (kv[0] == "epoch") { epoch = v; continue; }
                if (kv[0] == "position") { position = v; continue; }
            }
            throw new FormatException($"sampler state '{text}' has a bad part '{part}'; expected 'epoch=E;position=P' with E, P >= 0");
        }
        if (epoch is null || position is null)
            throw new FormatException($"sampler state '{text}' lacks epoch or position; expected 'epoch=E;position=P'");
        return new SamplerState(epoch.Value, position.Value);
    }

    /// <summary>The state <paramref name="steps"/> samples later in a dataset of <paramref name="count"/> images.</summary>
    public SamplerState Advance(long steps, int count)
    {
        long p = Position + steps;
        return new SamplerState(Epoch + p / count, p % count);
    }
}

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014; the seeding generator of xoshiro): our own PRNG so that epoch orders and
/// augmentation draws never depend on .NET's <see cref="Random"/> implementation, which may change between versions.
/// </summary>
public struct SplitMix64
{
    private ulong _state;
    public SplitMix64(ulong seed) => _state = seed;

    public ulong Next()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        return Mix(z);
    }

    /// <summary>The SplitMix64 output function: a bijective 64-bit mixer.</summary>
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>An unbiased integer in [0, bound) (Lemire's multiply-shift with rejection).</summary>
    public uint NextBelow(uint bound)
    {
        ulong m = (ulong)(uint)(Next() >> 32) * bound;
        uint low = (uint)m;
        if (low < bound)
        {
            uint threshold = (uint)(-(int)bound) % bound;
            while (low < threshold)
            {
                m = (ulong)(uint)(Next() >> 32) * bound;
                low = (uint)m;
            }
        }
        return (uint)(m >> 32);
    }

    /// <summary>A well-mixed 64-bit value from several keys (seed, epoch, position, ...), order-sensitive.</summary>
    public static ulong Hash(ulong a, ulong b, ulong c = 0, ulong d = 0)
    {
        ulong h = Mix(a + 0x9E3779B97F4A7C15UL);
        h = Mix(h ^ (b + 0xD1B54A32D192ED03UL));
        h = Mix(h ^ (c + 0x8CB92BA72F3D8DD7UL));
        return Mix(h ^ (d + 0xABC98388FB8FAC03UL));
    }
}

/// <summary>
/// An infinite, deterministic, resumable sampler of dataset indices. Epoch e's order is a Fisher-Yates permutation
/// of 0..count-1 driven by SplitMix64 seeded with Hash(seed, e); samples are handed out in that order, and a batch
/// that runs past the end of an epoch continues with the next epoch's permutation (no sample dropped or repeated
/// within an epoch, whatever the batch size). The state is (epoch, position); setting <see cref="State"/> to a saved
/// value gives exactly the indices that would have followed it.
/// </summary>
public sealed class ResumableSampler
{
    private readonly int[] _perm;
    private long _permEpoch = -1;
    private SamplerState _state;

    public int Count { get; }
    public int BatchSize { get; }
    public ulong Seed { get; }
    /// <summary>False keeps dataset order in every epoch (evaluation).</summary>
    public bool Shuffle { get; }

    public ResumableSampler(int count, int batchSize, ulong seed, bool shuffle = true)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), $"the dataset has {count} images; the sampler needs at least one");
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), $"batch size {batchSize} must be positive");
        Count = count;
        BatchSize = batchSize;
        Seed = seed;
        Shuffle = shuffle;
        _perm = new int[count];
    }

    public SamplerState State
    {
        get => _state;
        set
        {
            if (value.Epoch < 0 || value.Position < 0 || value.Position >= Count)
                throw new ArgumentOutOfRangeException(nameof(value),
                    $"sampler state {value} does not fit a dataset of {Count} images (position must be 0..{Count - 1}); was the checkpoint made with another dataset?");
            _state = value;
        }
    }

    /// <summary>Epoch <paramref name="epoch"/>'s order (a view of an internal buffer, valid until another epoch is asked for).</summary>
    public ReadOnlySpan<int> Permutation(long epoch)
    {
        if (_permEpoch != epoch)
        {
            FillPermutation(_perm, Seed, epoch, Shuffle);
            _permEpoch = epoch;
        }
        return _perm;
    }

    /// <summary>Writes epoch <paramref name="epoch"/>'s permutation of 0..perm.Length-1 into <paramref name="perm"/>.</summary>
    public static void FillPermutation(Span<int> perm, ulong seed, long epoch, bool shuffle = true)
    {
        for (int i = 0; i < perm.Length; i++) perm[i] = i;
        if (!shuffle) return;
        var rng = new SplitMix64(SplitMix64.Hash(seed, (ulong)epoch, 0x5A4D504C45UL));
        for (int i = perm.Length - 1; i > 0; i--)
        {
            int j = (int)rng.NextBelow((uint)(i + 1));
            (perm[i], perm[j]) = (perm[j], perm[i]);
        }
    }

    /// <summary>Fills <paramref name="indices"/> with the next indices and advances the state by its length.</summary>
    public void NextIndices(Span<int> indices)
    {
        int done = 0;
        while (done < indices.Length)
        {
            var perm = Permutation(_state.Epoch);
            int take = (int)Math.Min(indices.Length - done, Count - _state.Position);
            perm.Slice((int)_state.Position, take).CopyTo(indices[done..]);
            done += take;
            _state = _state.Advance(take, Count);
        }
    }

    /// <summary>The next <see cref="BatchSize"/> indices as a new array (convenience; the hot path uses the span overload).</summary>
    public int[] NextBatch()
    {
        var idx = new int[BatchSize];
        NextIndices(idx);
        return idx;
    }
}
