using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace Ect.Data;

/// <summary>
/// A whole image dataset held as uint8 pixels, laid out NCHW (image, channel, row, column), which is the layout
/// EDM's <c>ImageFolderDataset</c> hands to training and the one the network eats, so a batch is a plain copy.
/// Pixels live in unmanaged memory (no 2 GB array limit) or in a memory-mapped raw cache file
/// (<see cref="SaveRaw"/> / <see cref="OpenMapped"/>) for sets larger than RAM.
/// Labels are class indices 0..ClassCount-1, or absent (<see cref="Labels"/> null, ClassCount 0).
/// </summary>
public sealed unsafe class ImageDataset : IDisposable
{
    private const string RawMagic = "ECTRAW01";
    private byte* _pixels;
    private readonly long _byteCount;
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly int[]? _labels;

    public int Count { get; }
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }
    public int ClassCount { get; private set; }
    public IReadOnlyList<string>? ClassNames { get; }
    /// <summary>Where the data came from (for messages and metadata).</summary>
    public string SourcePath { get; }
    /// <summary>One name per image (file or entry name), in dataset order; null for sources without names (IDX, CIFAR).</summary>
    public IReadOnlyList<string>? ImageNames { get; }
    public bool IsMemoryMapped => _map is not null;
    public int ImageBytes => Channels * Height * Width;
    public ReadOnlySpan<int> Labels => _labels;
    public bool HasLabels => _labels is not null;

    private ImageDataset(string source, int count, int channels, int height, int width, int[]? labels, int classCount,
        IReadOnlyList<string>? classNames, IReadOnlyList<string>? imageNames)
    {
        SourcePath = source;
        Count = count;
        Channels = channels;
        Height = height;
        Width = width;
        _labels = labels;
        ClassCount = labels is null ? 0 : classCount;
        ClassNames = classNames;
        ImageNames = imageNames;
        // One image's bytes must fit a span (ImageBytes is an int); the whole set is a 64-bit count.
        if (count <= 0 || channels <= 0 || height <= 0 || width <= 0 || checked((long)channels * height * width) > Array.MaxLength)
            throw new DatasetException(source, $"{count} images of {channels}x{height}x{width} is not a dataset shape this program can hold",
                "The source or its cache is corrupt: recreate it");
        _byteCount = checked((long)count * channels * height * width);
    }

    /// <summary>Allocates an empty (zeroed) in-memory dataset to be filled through <see cref="GetImageForWrite"/>.</summary>
    public static ImageDataset Allocate(string source, int count, int channels, int height, int width, int[]? labels,
        int classCount, IReadOnlyList<string>? classNames = null, IReadOnlyList<string>? imageNames = null)
    {
        if (count <= 0)
            throw new DatasetException(source, "the dataset is empty (0 images)", "Point --source at a dataset that holds images");
        if (labels is not null && labels.Length != count)
            throw new ArgumentException($"labels has {labels.Length} entries for {count} images", nameof(labels));
        var ds = new ImageDataset(source, count, channels, height, width, labels, classCount, classNames, imageNames);
        ds._pixels = (byte*)NativeMemory.AllocZeroed((nuint)Math.Max(1, ds._byteCount));
        return ds;
    }

    private ImageDataset(string source, int count, int channels, int height, int width, int[]? labels, int classCount,
        IReadOnlyList<string>? classNames, MemoryMappedFile map, MemoryMappedViewAccessor view, long offset)
        : this(source, count, channels, height, width, labels, classCount, classNames, null)
    {
        _map = map;
        _view = view;
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _pixels = p + view.PointerOffset + offset;
    }

    /// <summary>The pixels of image <paramref name="index"/>, CHW.</summary>
    public ReadOnlySpan<byte> GetImage(int index)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index), $"index {index} outside 0..{Count - 1}");
        return new ReadOnlySpan<byte>(_pixels + (long)index * ImageBytes, ImageBytes);
    }

    /// <summary>Writable pixels of image <paramref name="index"/> (loaders only; not for memory-mapped sets).</summary>
    public Span<byte> GetImageForWrite(int index)
    {
        if (_map is not null) throw new InvalidOperationException("a memory-mapped dataset is read-only");
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index));
        return new Span<byte>(_pixels + (long)index * ImageBytes, ImageBytes);
    }

    /// <summary>Sets the class count after loading (loaders learn it from the labels: max label + 1, as EDM).</summary>
    internal void SetClassCount(int classes) => ClassCount = _labels is null ? 0 : classes;

    /// <summary>Label of image <paramref name="index"/>, or -1 when the set has no labels.</summary>
    public int GetLabel(int index) => _labels is null ? -1 : _labels[index];

    /// <summary>
    /// Writes the dataset as a raw cache: magic, header (count, C, H, W, class count, has-labels), int32 labels, then
    /// the NCHW pixels at a 4096-byte aligned offset, so <see cref="OpenMapped"/> can map it without reading it.
    /// </summary>
    public void SaveRaw(string path)
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        WriteRawHeader(fs, Count, Channels, Height, Width, ClassCount, _labels);
        for (long off = 0; off < _byteCount; off += 1 << 30)
            fs.Write(new ReadOnlySpan<byte>(_pixels + off, (int)Math.Min(1 << 30, _byteCount - off)));
    }

    /// <summary>Writes the raw cache header and labels at the start of <paramref name="fs"/> and leaves it at the pixel offset.</summary>
    internal static void WriteRawHeader(FileStream fs, int count, int channels, int height, int width, int classCount, int[]? labels)
    {
        fs.Position = 0;
        using (var w = new BinaryWriter(fs, System.Text.Encoding.ASCII, leaveOpen: true))
        {
            w.Write(RawMagic.ToCharArray());
            w.Write(count); w.Write(channels); w.Write(height); w.Write(width); w.Write(labels is null ? 0 : classCount);
            w.Write(labels is not null);
            if (labels is not null) foreach (var l in labels) w.Write(l);
        }
        long pad = RawPixelOffset(labels is not null, count) - fs.Position;
        fs.Write(new byte[pad]);
    }

    /// <summary>Where the pixels start in a raw cache (4096-byte aligned, after header and labels).</summary>
    internal static long RawPixelOffset(bool hasLabels, int count)
    {
        long header = 8 + 5 * 4 + 1 + (hasLabels ? 4L * count : 0);
        return (header + 4095) / 4096 * 4096;
    }

    /// <summary>Maps a raw cache written by <see cref="SaveRaw"/>; pixels stay on disk and page in on use.</summary>
    public static ImageDataset OpenMapped(string path)
    {
        if (!File.Exists(path))
            throw new DatasetException(path, "the raw cache file does not exist", "Write it first with ImageDataset.SaveRaw");
        int count, c, h, wd, classes; bool hasLabels; int[]? labels = null;
        long fileLength = new FileInfo(path).Length;
        using (var fs = File.OpenRead(path))
        using (var r = new BinaryReader(fs))
        {
            try
            {
                var magic = new string(r.ReadChars(8));
                if (magic != RawMagic)
                    throw new DatasetException(path, $"not an ECT raw cache (magic '{magic}', expected '{RawMagic}')", "Recreate the cache with ImageDataset.SaveRaw");
                count = r.ReadInt32(); c = r.ReadInt32(); h = r.ReadInt32(); wd = r.ReadInt32(); classes = r.ReadInt32();
                hasLabels = r.ReadBoolean();
                // Every size below comes from the file: checked against limits and the file's length before any allocation.
                if (count <= 0 || c is not (1 or 3) || h is <= 0 or > Imaging.ImageDecoder.MaxSide || wd is <= 0 or > Imaging.ImageDecoder.MaxSide || classes < 0)
                    throw new DatasetException(path, $"the raw cache header is corrupt: {count} images of {c}x{h}x{wd}, {classes} classes",
                        "Delete the cache file; it is rewritten from the dataset");
                long needed = checked(RawPixelOffset(hasLabels, count) + (long)count * c * h * wd);
                if (fileLength < needed)
                    throw new DatasetException(path, $"the raw cache is truncated: {fileLength} bytes, its header ({count} images of {c}x{h}x{wd}) needs {needed}",
                        "Delete the cache file; it is rewritten from the dataset");
                if (hasLabels) { labels = new int[count]; for (int i = 0; i < count; i++) labels[i] = r.ReadInt32(); }
            }
            catch (EndOfStreamException e)
            {
                throw new DatasetException(path, "the raw cache is truncated inside its header", "Recreate the cache with ImageDataset.SaveRaw", e);
            }
        }
        long offset = RawPixelOffset(hasLabels, count);
        long need = checked(offset + (long)count * c * h * wd);
        if (fileLength < need)
            throw new DatasetException(path, $"the raw cache is truncated: {fileLength} bytes, header needs {need}", "Recreate the cache with ImageDataset.SaveRaw");
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        var view = map.CreateViewAccessor(0, need, MemoryMappedFileAccess.Read);
        return new ImageDataset(path, count, c, h, wd, labels, classes, null, map, view, offset);
    }

    public void Dispose()
    {
        if (_pixels == null) return;
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _map!.Dispose();
        }
        else
        {
            NativeMemory.Free(_pixels);
        }
        _pixels = null;
        GC.SuppressFinalize(this);
    }

    ~ImageDataset()
    {
        if (_pixels != null && _view is null) NativeMemory.Free(_pixels);
    }

    public override string ToString() =>
        $"{Count} images {Channels}x{Height}x{Width}" + (HasLabels ? $", {ClassCount} classes" : ", unlabelled") + $" from {SourcePath}";
}
