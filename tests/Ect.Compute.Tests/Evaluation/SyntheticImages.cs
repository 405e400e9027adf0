using static TorchSharp.torch;

namespace Ect.Compute.Tests.Evaluation;

/// <summary>Seeded synthetic grey image sets in [-1,1] that look clearly different to any image network.</summary>
internal static class SyntheticImages
{
    /// <summary>1-3 soft bright Gaussian blobs on a dark background, [n,1,size,size].</summary>
    public static Tensor Blobs(int n, int size, int seed)
    {
        var rng = new Random(seed);
        var data = new float[n * size * size];
        for (var k = 0; k < n; k++)
        {
            var blobs = Enumerable.Range(0, rng.Next(1, 4))
                .Select(_ => (x: rng.NextDouble() * size, y: rng.NextDouble() * size, r: 2 + rng.NextDouble() * size / 5)).ToArray();
            for (var y = 0; y < size; y++)
            for (var x = 0; x < size; x++)
            {
                var v = blobs.Sum(b => Math.Exp(-((x - b.x) * (x - b.x) + (y - b.y) * (y - b.y)) / (2 * b.r * b.r)));
                data[(k * size + y) * size + x] = (float)(2 * Math.Min(v, 1) - 1);
            }
        }
        return tensor(data, [n, 1, size, size]);
    }

    /// <summary>Full-contrast sinusoidal stripes of random frequency, angle and phase, [n,1,size,size].</summary>
    public static Tensor Stripes(int n, int size, int seed)
    {
        var rng = new Random(seed);
        var data = new float[n * size * size];
        for (var k = 0; k < n; k++)
        {
            var f = 0.3 + rng.NextDouble() * 0.9;
            var a = rng.NextDouble() * Math.PI;
            var p = rng.NextDouble() * 2 * Math.PI;
            for (var y = 0; y < size; y++)
            for (var x = 0; x < size; x++)
                data[(k * size + y) * size + x] = (float)Math.Sin(f * (x * Math.Cos(a) + y * Math.Sin(a)) + p);
        }
        return tensor(data, [n, 1, size, size]);
    }
}
