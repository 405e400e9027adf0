namespace Ect.Data.Imaging;

/// <summary>
/// uint8 image resizing for dataset export. EDM's dataset_tool centre-crops to a square and resizes with PIL's
/// Lanczos filter; we centre-crop the same way and resize with an antialiased triangle (bilinear) filter, PIL's
/// BILINEAR algorithm: simpler, and close enough for 2x-8x downsampling (deviation noted here on purpose).
/// Images that are only slightly smaller than the target are padded with black instead, as EDM pads MNIST 28 → 32.
/// </summary>
public static class Resample
{
    /// <summary>True when an image of <paramref name="height"/>x<paramref name="width"/> is padded (not resized) to <paramref name="target"/>:
    /// it fits and covers more than 3/4 of the target side (MNIST 28 in 32).</summary>
    public static bool PadsTo(int height, int width, int target) =>
        height <= target && width <= target && Math.Max(height, width) * 4 > target * 3;

    /// <summary>Brings CHW uint8 pixels to target x target: unchanged, padded with 0, or centre-cropped and resized.</summary>
    public static byte[] ToSquare(byte[] chw, int channels, int height, int width, int target)
    {
        // Sizes in checked 64-bit arithmetic: the pixel array's length equals C*H*W, so every int offset below is
        // smaller than an array length and cannot overflow.
        if (channels <= 0 || height <= 0 || width <= 0 || checked((long)channels * height * width) != chw.Length)
            throw new ArgumentException($"{chw.Length} pixel bytes for a {channels}x{height}x{width} image", nameof(chw));
        if (height == target && width == target) return chw;
        var output = new byte[checked((long)channels * target * target)];
        if (PadsTo(height, width, target))
        {
            int top = (target - height) / 2, left = (target - width) / 2;
            for (int c = 0; c < channels; c++)
                for (int y = 0; y < height; y++)
                    chw.AsSpan(c * height * width + y * width, width).CopyTo(output.AsSpan(c * target * target + (y + top) * target + left));
            return output;
        }
        int crop = Math.Min(height, width);
        int y0 = (height - crop) / 2, x0 = (width - crop) / 2;
        var hTaps = Taps(crop, target);
        var tmp = new float[checked((long)crop * target)];
        for (int c = 0; c < channels; c++)
        {
            int plane = c * height * width;
            // Horizontal pass over the cropped rows.
            for (int y = 0; y < crop; y++)
            {
                int row = plane + (y + y0) * width + x0;
                for (int x = 0; x < target; x++)
                {
                    var (start, weights) = hTaps[x];
                    float acc = 0;
                    for (int k = 0; k < weights.Length; k++) acc += weights[k] * chw[row + start + k];
                    tmp[y * target + x] = acc;
                }
            }
            // Vertical pass.
            for (int y = 0; y < target; y++)
            {
                var (start, weights) = hTaps[y];
                for (int x = 0; x < target; x++)
                {
                    float acc = 0;
                    for (int k = 0; k < weights.Length; k++) acc += weights[k] * tmp[(start + k) * target + x];
                    output[c * target * target + y * target + x] = (byte)Math.Clamp((int)MathF.Round(acc), 0, 255);
                }
            }
        }
        return output;
    }

    /// <summary>Per output sample: first input index and normalised triangle-filter weights (support widened when downsampling).</summary>
    private static (int Start, float[] Weights)[] Taps(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize;
        double support = Math.Max(1.0, scale);
        var taps = new (int, float[])[outSize];
        for (int o = 0; o < outSize; o++)
        {
            double center = (o + 0.5) * scale;
            int lo = Math.Max(0, (int)Math.Floor(center - support));
            int hi = Math.Min(inSize, (int)Math.Ceiling(center + support));
            var w = new double[hi - lo];
            double sum = 0;
            for (int i = lo; i < hi; i++)
            {
                double d = Math.Abs((i + 0.5 - center) / support);
                w[i - lo] = Math.Max(0, 1 - d);
                sum += w[i - lo];
            }
            taps[o] = (lo, w.Select(v => (float)(v / sum)).ToArray());
        }
        return taps;
    }
}
