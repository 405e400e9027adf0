using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using Ect.Data.Imaging;
using Ect.Data.Sources;
using Ect.Compute.IO;

namespace Ect.Data;

/// <summary>What <see cref="DatasetPreparer.Prepare"/> wrote.</summary>
public sealed record PrepareResult(string Destination, int Images, int Channels, int Resolution, int ClassCount, string SourceFormat, TimeSpan Elapsed);

/// <summary>
/// <c>ect data prepare</c>: converts any supported source into EDM's dataset layout, the one EDM's dataset_tool
/// writes and its training reads: <c>00000/img00000000.png</c> ... (folder = index / 1000, 8-digit index), PNGs
/// stored uncompressed in the zip (ZIP_STORED, as dataset_tool), and <c>dataset.json</c> with
/// <c>{"labels": [["00000/img00000000.png", 9], ...]}</c> or <c>{"labels": null}</c>.
/// Resolution: the given one (power of two; images padded if they nearly fit, else centre-cropped and resized), or
/// by default the images' own size, except 28x28 IDX images, which are padded to 32x32 as dataset_tool does for MNIST.
/// </summary>
public static class DatasetPreparer
{
    private const int Chunk = 1024;
    private static readonly DateTimeOffset FixedTime = new(1980, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// Converts <paramref name="source"/> into <paramref name="dest"/> (a .zip, or an empty/new folder).
    /// Throws <see cref="DatasetException"/> for bad input; the destination is written to a temporary name and
    /// renamed at the end, so a failed run leaves no half-written zip.
    /// </summary>
    public static PrepareResult Prepare(string source, string dest, int? resolution, int? maxImages,
        IProgress<(int done, int total)>? progress, CancellationToken cancellation = default)
    {
        var clock = Stopwatch.StartNew();
        if (string.IsNullOrWhiteSpace(dest))
            throw new DatasetException("(empty path)", "no destination given", "Pass --dest OUT.zip");
        if (maxImages is <= 0)
            throw new DatasetException(source, $"--max-images {maxImages} would write an empty dataset", "Pass a positive --max-images or leave it out");
        if (resolution is { } r0) ResolutionRule.Check(r0, $"--resolution {r0}");
        using var src = DatasetSource.Open(source);
        int total = Math.Min(src.Count, maxImages ?? src.Count);
        bool toZip = dest.EndsWith(".zip", StringComparison.OrdinalIgnoreCase);
        if (!toZip && Directory.Exists(dest) && Directory.EnumerateFileSystemEntries(dest).Any())
            throw new DatasetException(dest, "the destination folder is not empty", "Pass an empty or new folder, or a .zip path, as --dest");
        var destDir = Path.GetDirectoryName(Path.GetFullPath(dest))!;
        if (!Directory.Exists(destDir))
            throw new DatasetException(dest, $"the folder {destDir} does not exist", "Create it first or pick another --dest");

        string tmp = toZip ? dest + ".partial" : dest;
        var labels = new List<(string Name, int Label)>(src.HasLabels ? total : 0);
        SourceImage? first = null;
        int target = 0, channels = 0, done = 0, maxLabel = -1;
        ZipArchive? zip = null;
        FileStream? zipStream = null;
        try
        {
            if (toZip)
            {
                zipStream = new FileStream(tmp, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 20);
                zip = new ZipArchive(zipStream, ZipArchiveMode.Create, leaveOpen: true);
            }
            else Directory.CreateDirectory(dest);

            var batch = new List<SourceImage>(Chunk);
            var encoded = new byte[Chunk][];
            progress?.Report((0, total));
            foreach (var img in DatasetSource.ReadGuarded(src, total))
            {
                if (first is null)
                {
                    first = img;
                    channels = img.Channels;
                    target = resolution ?? DefaultResolution(src, img);
                    if (resolution is null) ResolutionRule.Check(target, $"{source} ({img.Width}x{img.Height} images)");
                }
                else if (img.Channels != channels || (resolution is null && (img.Height != first.Height || img.Width != first.Width)))
                {
                    DatasetSource.CheckSameShape(src, first, img);
                }
                if (channels is not (1 or 3))
                    throw new DatasetException(source, img.Entry, $"has {channels} channels; datasets take 1 (grayscale) or 3 (RGB)", "Convert the images to RGB or grayscale");
                batch.Add(img);
                if (batch.Count == Chunk) { Flush(); cancellation.ThrowIfCancellationRequested(); }
            }
            Flush();
            if (first is null)
                throw new DatasetException(source, "the dataset is empty (0 images)", "Point --source at a dataset that holds images");

            var json = DatasetJson(src.HasLabels ? labels : null);
            if (zip is not null)
            {
                var e = zip.CreateEntry("dataset.json", CompressionLevel.NoCompression);
                e.LastWriteTime = FixedTime;
                using var s = e.Open();
                s.Write(Encoding.UTF8.GetBytes(json));
                zip.Dispose();
                zip = null;
                zipStream!.Dispose();
                zipStream = null;
                AtomicFile.Commit(tmp, dest);
            }
            else
            {
                File.WriteAllText(Path.Combine(dest, "dataset.json"), json);
            }
            return new PrepareResult(dest, done, channels, target, src.HasLabels ? maxLabel + 1 : 0, src.Format, clock.Elapsed);

            void Flush()
            {
                int m = batch.Count;
                if (m == 0) return;
                int t = target, c = channels;
                // Encoding is the slow part: 2 threads, each image into its own slot, written below in index order.
                Parallel.For(0, m, new ParallelOptions { MaxDegreeOfParallelism = 2, CancellationToken = cancellation }, i =>
                {
                    var im = batch[i];
                    var px = Resample.ToSquare(im.Pixels, c, im.Height, im.Width, t);
                    encoded[i] = PngEncoder.EncodeChw(px, c, t, t);
                });
                for (int i = 0; i < m; i++)
                {
                    string name = ArchiveName(done);
                    if (zip is not null)
                    {
                        var e = zip.CreateEntry(name, CompressionLevel.NoCompression);
                        e.LastWriteTime = FixedTime; // fixed time: same input, same zip bytes
                        using var s = e.Open();
                        s.Write(encoded[i]);
                    }
                    else
                    {
                        var path = Path.Combine(dest, name);
                        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                        File.WriteAllBytes(path, encoded[i]);
                    }
                    if (src.HasLabels) { labels.Add((name, batch[i].Label)); maxLabel = Math.Max(maxLabel, batch[i].Label); }
                    done++;
                }
                batch.Clear();
                progress?.Report((done, total));
            }
        }
        catch (Exception e)
        {
            zip?.Dispose();
            zipStream?.Dispose();
            if (toZip && File.Exists(tmp)) File.Delete(tmp);
            if (e is IOException or UnauthorizedAccessException)
                throw new DatasetException(dest, $"cannot be written ({e.GetType().Name}: {e.Message})",
                    "Check free disk space and write permission for the destination", e);
            throw;
        }
    }

    /// <summary>EDM's archive name for image <paramref name="index"/>: first 5 of its 8 digits as the folder.</summary>
    public static string ArchiveName(int index)
    {
        var s = index.ToString("D8", System.Globalization.CultureInfo.InvariantCulture);
        return $"{s[..5]}/img{s}.png";
    }

    private static int DefaultResolution(IImageSource src, SourceImage img)
    {
        // dataset_tool pads MNIST's 28x28 to 32x32; do the same for any IDX set of that size.
        if (src is IdxSource && img.Height == 28 && img.Width == 28) return 32;
        if (img.Height != img.Width)
            throw new DatasetException(src.Path, img.Entry, $"is {img.Width}x{img.Height}, not square, and no --resolution was given",
                "Pass --resolution N (a power of two) to centre-crop and resize every image to N x N");
        return img.Height;
    }

    /// <summary>dataset.json as Python's json.dumps writes it for dataset_tool.</summary>
    private static string DatasetJson(List<(string Name, int Label)>? labels)
    {
        if (labels is null) return "{\"labels\": null}";
        var sb = new StringBuilder(labels.Count * 32 + 16);
        sb.Append("{\"labels\": [");
        for (int i = 0; i < labels.Count; i++)
        {
            if (i > 0) sb.Append(", ");
            sb.Append("[\"").Append(labels[i].Name).Append("\", ").Append(labels[i].Label).Append(']');
        }
        return sb.Append("]}").ToString();
    }
}
