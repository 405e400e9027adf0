using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Data;

/// <summary>How to bring images to a target resolution.</summary>
public enum ResizeMode
{
    /// <summary>Pad when the image fits and covers more than 3/4 of the target side (MNIST 28 → 32), else bilinear.</summary>
    Auto,
    /// <summary>Centre the image on a -1 (black) background, as EDM's dataset_tool pads MNIST to 32x32.</summary>
    Pad,
    /// <summary>Bilinear resampling, align_corners=false (torch.nn.functional.interpolate's default; no antialias).</summary>
    Bilinear,
}

/// <summary>Options for <see cref="BatchAssembler"/>.</summary>
public sealed record BatchOptions
{
    /// <summary>Output resolution (square); null keeps the dataset's own size.</summary>
    public int? Resolution { get; init; }
    public ResizeMode Resize { get; init; } = ResizeMode.Auto;
    /// <summary>Mirror each image left-right with probability 1/2 (a deterministic draw per sample, see <see cref="BatchAssembler.FlipOf"/>).</summary>
    public bool XFlip { get; init; }
    /// <summary>Hand out one-hot labels when the dataset has labels (false: always null, for unconditional training).</summary>
    public bool UseLabels { get; init; } = true;
    /// <summary>False keeps dataset order (evaluation).</summary>
    public bool Shuffle { get; init; } = true;
}

/// <summary>One batch: images [B,C,R,R] float32 in [-1,1], one-hot labels [B,classes] or null, and the sampler state it began at.</summary>
public sealed class ImageBatch(Tensor images, Tensor? labels, SamplerState start) : IDisposable
{
    public Tensor Images { get; } = images;
    public Tensor? Labels { get; } = labels;
    /// <summary>The sampler state before this batch: restoring it replays this very batch.</summary>
    public SamplerState Start { get; } = start;

    public void Dispose()
    {
        Images.Dispose();
        Labels?.Dispose();
    }
}

/// <summary>
/// Turns uint8 NCHW images into float batches the way EDM's training loop does (<c>x / 127.5 - 1</c> in float32),
/// with optional pad/resize and x-flip. Deterministic and resumable: the indices come from a
/// <see cref="ResumableSampler"/>, and each sample's flip is a draw from (seed, epoch, position), so restoring the
/// sampler state reproduces both images and augmentation. Single-threaded on purpose (the training step owns the
/// cores); one instance is not safe to share between threads.
/// </summary>
public sealed unsafe class BatchAssembler
{
    private static readonly float[] Lut = BuildLut();
    private readonly ImageDataset _data;
    private readonly int[] _indices;
    private readonly bool _pad, _bilinear;
    private readonly int _padTop, _padLeft;
    private readonly int[] _x0 = [], _x1 = [], _y0 = [], _y1 = [];
    private readonly float[] _wx = [], _wy = [];

    public ResumableSampler Sampler { get; }
    public BatchOptions Options { get; }
    public int BatchSize { get; }
    public int Channels => _data.Channels;
    public int Resolution { get; }
    /// <summary>Width of the one-hot labels; 0 when batches carry no labels.</summary>
    public int LabelDim { get; }
    /// <summary>Floats in one assembled image batch (B*C*R*R).</summary>
    public int ImageFloats => BatchSize * Channels * Resolution * Resolution;

    public BatchAssembler(ImageDataset data, int batchSize, ulong seed, BatchOptions? options = null)
    {
        _data = data;
        Options = options ?? new BatchOptions();
        BatchSize = batchSize;
        Sampler = new ResumableSampler(data.Count, batchSize, seed, Options.Shuffle);
        _indices = new int[batchSize];
        LabelDim = Options.UseLabels && data.HasLabels ? data.ClassCount : 0;
        int h = data.Height, w = data.Width;
        if (Options.Resolution is { } r)
        {
            Resolution = r;
        }
        else if (h == w)
        {
            Resolution = h;
        }
        else
        {
            throw new DatasetException(data.SourcePath, $"images are {w}x{h}, not square, and no target resolution was given",
                "Pass a resolution (e.g. --resolution 32) so images are resized to a square");
        }
        ResolutionRule.Check(Resolution, data.SourcePath);
        bool same = Resolution == h && Resolution == w;
        if (same) return;
        var mode = Options.Resize;
        // Same rule as dataset export: pad when the image nearly fills the target (MNIST 28 in 32), else resample.
        if (mode == ResizeMode.Auto) mode = Imaging.Resample.PadsTo(h, w, Resolution) ? ResizeMode.Pad : ResizeMode.Bilinear;
        if (mode == ResizeMode.Pad)
        {
            if (Resolution < h || Resolution < w)
                throw new DatasetException(data.SourcePath, $"cannot pad {w}x{h} images to the smaller resolution {Resolution}",
                    "Use bilinear resizing or a resolution at least as large as the images");
            _pad = true;
            _padTop = (Resolution - h) / 2;
            _padLeft = (Resolution - w) / 2;
        }
        else
        {
            _bilinear = true;
            (_y0, _y1, _wy) = BilinearTaps(h, Resolution);
            (_x0, _x1, _wx) = BilinearTaps(w, Resolution);
        }
    }

    /// <summary>Sampler state; set it from a checkpoint to resume exactly.</summary>
    public SamplerState State { get => Sampler.State; set => Sampler.State = value; }

    /// <summary>Whether the sample at (epoch, position) is mirrored: one bit of Hash(seed, epoch, position, "FLIP").</summary>
    public static bool FlipOf(ulong seed, long epoch, long position) =>
        (SplitMix64.Hash(seed, (ulong)epoch, (ulong)position, 0x464C4950UL) & 1) != 0;

    /// <summary>The next batch as new tensors (the caller disposes them, e.g. through a dispose scope).</summary>
    public ImageBatch Next()
    {
        var start = Sampler.State;
        var images = torch.empty([BatchSize, Channels, Resolution, Resolution], ScalarType.Float32);
        Tensor? labels = LabelDim > 0 ? torch.empty([BatchSize, LabelDim], ScalarType.Float32) : null;
        // `bytes` is a view of the CPU tensor's own storage (no copy), so the batch is written in place.
        var imgSpan = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(images.bytes);
        var labSpan = labels is null ? Span<float>.Empty : System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(labels.bytes);
        NextInto(imgSpan, labSpan);
        return new ImageBatch(images, labels, start);
    }

    /// <summary>Fills caller-owned buffers with the next batch (no allocation). Returns the state the batch began at.</summary>
    public SamplerState NextInto(Span<float> images, Span<float> oneHot)
    {
        var start = Sampler.State;
        Sampler.NextIndices(_indices);
        Assemble(_indices, start, images, oneHot);
        return start;
    }

    /// <summary>
    /// Assembles the samples <paramref name="indices"/>, the k-th of which sits at <paramref name="start"/> advanced by k
    /// (that position decides its flip), into <paramref name="images"/> [B,C,R,R] and <paramref name="oneHot"/> [B,LabelDim].
    /// </summary>
    public void Assemble(ReadOnlySpan<int> indices, SamplerState start, Span<float> images, Span<float> oneHot)
    {
        int b = indices.Length, c = Channels, r = Resolution, plane = r * r, per = c * plane;
        if (images.Length < b * per) throw new ArgumentException($"image buffer holds {images.Length} floats, the batch needs {b * per}", nameof(images));
        if (LabelDim > 0 && oneHot.Length < b * LabelDim) throw new ArgumentException($"label buffer holds {oneHot.Length} floats, the batch needs {b * LabelDim}", nameof(oneHot));
        if (LabelDim > 0) oneHot[..(b * LabelDim)].Clear();
        for (int k = 0; k < b; k++)
        {
            var pos = start.Advance(k, _data.Count);
            bool flip = Options.XFlip && FlipOf(Sampler.Seed, pos.Epoch, pos.Position);
            var src = _data.GetImage(indices[k]);
            var dst = images.Slice(k * per, per);
            for (int ch = 0; ch < c; ch++)
                FillPlane(src.Slice(ch * _data.Height * _data.Width, _data.Height * _data.Width), dst.Slice(ch * plane, plane), flip);
            if (LabelDim > 0)
            {
                int label = _data.GetLabel(indices[k]);
                if ((uint)label < (uint)LabelDim) oneHot[k * LabelDim + label] = 1f;
            }
        }
    }

    private void FillPlane(ReadOnlySpan<byte> src, Span<float> dst, bool flip)
    {
        int h = _data.Height, w = _data.Width, r = Resolution;
        var lut = Lut;
        if (_bilinear)
        {
            for (int y = 0; y < r; y++)
            {
                var row0 = src.Slice(_y0[y] * w, w);
                var row1 = src.Slice(_y1[y] * w, w);
                float wy = _wy[y];
                var o = dst.Slice(y * r, r);
                for (int x = 0; x < r; x++)
                {
                    float wx = _wx[x];
                    float top = lut[row0[_x0[x]]] * (1 - wx) + lut[row0[_x1[x]]] * wx;
                    float bot = lut[row1[_x0[x]]] * (1 - wx) + lut[row1[_x1[x]]] * wx;
                    o[x] = top * (1 - wy) + bot * wy;
                }
                if (flip) o.Reverse();
            }
            return;
        }
        if (_pad) dst.Fill(-1f);
        for (int y = 0; y < h; y++)
        {
            var row = src.Slice(y * w, w);
            var o = dst.Slice((y + _padTop) * r + _padLeft, w);
            for (int x = 0; x < w; x++) o[x] = lut[row[x]];
            // Reversing the whole output row (padding included) mirrors the padded image, even for odd padding.
            if (flip) dst.Slice((y + _padTop) * r, r).Reverse();
        }
    }

    private static (int[] I0, int[] I1, float[] W) BilinearTaps(int inSize, int outSize)
    {
        var i0 = new int[outSize];
        var i1 = new int[outSize];
        var wt = new float[outSize];
        double scale = (double)inSize / outSize;
        for (int o = 0; o < outSize; o++)
        {
            double s = Math.Max(0, (o + 0.5) * scale - 0.5);
            int a = Math.Min((int)s, inSize - 1);
            i0[o] = a;
            i1[o] = Math.Min(a + 1, inSize - 1);
            wt[o] = (float)(s - a);
        }
        return (i0, i1, wt);
    }

    private static float[] BuildLut()
    {
        // Same float32 operations as EDM's `images.to(torch.float32) / 127.5 - 1`.
        var t = new float[256];
        for (int i = 0; i < 256; i++) t[i] = (float)i / 127.5f - 1f;
        return t;
    }
}
