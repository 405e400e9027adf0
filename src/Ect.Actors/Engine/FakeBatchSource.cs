using System.Globalization;

namespace Ect.Actors.Engine;

/// <summary>
/// A deterministic stand-in for the dataset: a virtual dataset of <c>size</c> vectors whose values are a hash of
/// (seed, index); the order within each epoch is a seeded permutation. State "epoch:position".
/// </summary>
public sealed class FakeBatchSource(long seed, int batchSize, int width, int size = 1000) : IBatchSource, IDescribed
{
    public string Description => FormattableString.Invariant($"fake data (hashed vectors, no files): {size:N0} items of width {width}");

    private int _epoch;
    private int _position;
    private int[]? _order;
    private int _orderEpoch = -1;

    public string InitialState => "0:0";

    public void Restore(string state)
    {
        var parts = state.Split(':');
        if (parts.Length != 2 || !int.TryParse(parts[0], out var e) || !int.TryParse(parts[1], out var p))
            throw new FormatException($"Bad fake sampler state '{state}'");
        (_epoch, _position) = (e, p);
    }

    public Batch Next()
    {
        var data = new float[batchSize * width];
        for (int b = 0; b < batchSize; b++)
        {
            if (_position == size) { _epoch++; _position = 0; }
            int index = Order()[_position++];
            for (int j = 0; j < width; j++)
                data[b * width + j] = (float)(Hash((ulong)seed, (ulong)index, (ulong)j) / (double)ulong.MaxValue * 2 - 1);
        }
        return new Batch(data, batchSize, string.Create(CultureInfo.InvariantCulture, $"{_epoch}:{_position}"));
    }

    private int[] Order()
    {
        if (_orderEpoch == _epoch && _order != null) return _order;
        var rng = new Random(unchecked((int)Hash((ulong)seed, (ulong)_epoch, 77)));
        _order = Enumerable.Range(0, size).ToArray();
        rng.Shuffle(_order);
        _orderEpoch = _epoch;
        return _order;
    }

    internal static ulong Hash(ulong a, ulong b, ulong c)
    {
        ulong h = 0x9E3779B97F4A7C15UL ^ a;
        foreach (var x in new[] { b, c })
        {
            h ^= x + 0x9E3779B97F4A7C15UL + (h << 6) + (h >> 2);
            h ^= h >> 33; h *= 0xff51afd7ed558ccdUL; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53UL; h ^= h >> 33;
        }
        return h;
    }

    public void Dispose() { }
}
