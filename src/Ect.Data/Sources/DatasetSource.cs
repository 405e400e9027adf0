using Ect.Compute.IO;

namespace Ect.Data.Sources;

/// <summary>
/// Finds the format of a dataset from its path and opens it:
/// <list type="bullet">
/// <item>an IDX file (…-images-idx3-ubyte, gzipped or not), or a folder holding one (train split by default) → <see cref="IdxSource"/>;</item>
/// <item>a CIFAR-10 binary folder (data_batch_*.bin, test_batch.bin, directly or in cifar-10-batches-bin/) or a .tar.gz → <see cref="Cifar10Source"/>;</item>
/// <item>a .zip, or a folder of images (with or without dataset.json, with or without class sub-folders) → <see cref="ImageFilesSource"/>.</item>
/// </list>
/// </summary>
public static class DatasetSource
{
    public static IImageSource Open(string path, DatasetSplit split = DatasetSplit.Train)
    {
        try
        {
            return OpenCore(path, split);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ReadError(path, e);
        }
    }

    /// <summary>An operating-system read failure (permissions, I/O error) as a <see cref="DatasetException"/>.</summary>
    internal static DatasetException ReadError(string path, Exception e) =>
        new(path, $"cannot be read ({e.GetType().Name}: {e.Message})", "Check that it is readable by this user and not being written by another program", e);

    private static IImageSource OpenCore(string path, DatasetSplit split)
    {
        if (string.IsNullOrWhiteSpace(path))
            throw new DatasetException("(empty path)", "no dataset path given", "Pass --source PATH (a folder, .zip, .tar.gz or IDX file)");
        if (Directory.Exists(path))
        {
            if (Cifar10Source.FindBatchFolder(path) is not null) return new Cifar10Source(path, split);
            var idx = FindIdxImages(path, split);
            if (idx is not null) return new IdxSource(idx);
            return new ImageFilesSource(path);
        }
        if (!File.Exists(path))
            throw new DatasetException(path, "does not exist", "Check the path; supported: IDX files (.gz or not), CIFAR-10 binary folder or .tar.gz, EDM .zip or folder, folder of images");
        var name = Path.GetFileName(path).ToLowerInvariant();
        if (name.EndsWith(".zip")) return new ImageFilesSource(path);
        if (name.EndsWith(".tar.gz") || name.EndsWith(".tgz")) return new Cifar10Source(path, split);
        if (IdxSource.LooksLikeIdx(path)) return new IdxSource(path);
        throw new DatasetException(path, "is not a dataset format this program reads",
            "Pass an IDX file (train-images-idx3-ubyte[.gz]), a CIFAR-10 binary folder or cifar-10-binary.tar.gz, an EDM dataset .zip, or a folder of images");
    }

    /// <summary>Opens <paramref name="path"/> and loads it into memory, checking that all images share one shape.</summary>
    public static ImageDataset Load(string path, int? maxImages = null, DatasetSplit split = DatasetSplit.Train)
    {
        using var source = Open(path, split);
        return Load(source, maxImages);
    }

    public static ImageDataset Load(IImageSource source, int? maxImages = null)
    {
        if (maxImages is <= 0)
            throw new DatasetException(source.Path, $"--max-images {maxImages} leaves an empty dataset", "Pass a positive --max-images or leave it out");
        int n = Math.Min(source.Count, maxImages ?? source.Count);
        ImageDataset? ds = null;
        int[]? labels = source.HasLabels ? new int[n] : null;
        var names = source is ImageFilesSource fs ? fs.Names.Take(n).ToArray() : null;
        SourceImage? first = null;
        int i = 0, maxLabel = -1;
        try
        {
            foreach (var img in ReadGuarded(source, n))
            {
                if (first is null)
                {
                    first = img;
                    ds = ImageDataset.Allocate(source.Path, n, img.Channels, img.Height, img.Width, labels, 0, source.ClassNames, names);
                }
                else
                {
                    CheckSameShape(source, first, img);
                }
                img.Pixels.CopyTo(ds!.GetImageForWrite(i));
                if (labels is not null) { labels[i] = img.Label; maxLabel = Math.Max(maxLabel, img.Label); }
                i++;
            }
        }
        catch
        {
            ds?.Dispose();
            throw;
        }
        if (ds is null)
            throw new DatasetException(source.Path, "the dataset is empty (0 images)", "Point --source at a dataset that holds images");
        // Class count as EDM computes it (max label + 1), or the source's own class list when longer.
        int classes = Math.Max(maxLabel + 1, source.ClassNames?.Count ?? 0);
        ds.SetClassCount(classes);
        return ds;
    }

    /// <summary>
    /// Loads a set too large for RAM: streams the images of <paramref name="path"/> into a raw cache file at
    /// <paramref name="cachePath"/> (checked like <see cref="Load(string, int?, DatasetSplit)"/>) and memory-maps it;
    /// pages are read from disk as batches touch them. With <paramref name="reuse"/>, an existing cache newer than
    /// the source and holding the same image count is mapped instead of rewritten.
    /// </summary>
    public static ImageDataset LoadMapped(string path, string cachePath, int? maxImages = null, DatasetSplit split = DatasetSplit.Train, bool reuse = true)
    {
        using var source = Open(path, split);
        if (maxImages is <= 0)
            throw new DatasetException(source.Path, $"--max-images {maxImages} leaves an empty dataset", "Pass a positive --max-images or leave it out");
        int n = Math.Min(source.Count, maxImages ?? source.Count);
        if (reuse && File.Exists(cachePath)
            && File.GetLastWriteTimeUtc(cachePath) > (Directory.Exists(path) ? Directory.GetLastWriteTimeUtc(path) : File.GetLastWriteTimeUtc(path)))
        {
            var cached = ImageDataset.OpenMapped(cachePath);
            if (cached.Count == n && cached.HasLabels == source.HasLabels) return cached;
            cached.Dispose();
        }
        int[]? labels = source.HasLabels ? new int[n] : null;
        var partial = cachePath + ".partial";
        SourceImage? first = null;
        int i = 0, maxLabel = -1;
        try
        {
            using (var fs = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                fs.Position = ImageDataset.RawPixelOffset(labels is not null, n);
                foreach (var img in ReadGuarded(source, n))
                {
                    if (first is null) first = img;
                    else CheckSameShape(source, first, img);
                    fs.Write(img.Pixels);
                    if (labels is not null) { labels[i] = img.Label; maxLabel = Math.Max(maxLabel, img.Label); }
                    i++;
                }
                if (first is null)
                    throw new DatasetException(source.Path, "the dataset is empty (0 images)", "Point --source at a dataset that holds images");
                ImageDataset.WriteRawHeader(fs, n, first.Channels, first.Height, first.Width,
                    Math.Max(maxLabel + 1, source.ClassNames?.Count ?? 0), labels);
            }
            AtomicFile.Commit(partial, cachePath);
        }
        catch (Exception e)
        {
            if (File.Exists(partial)) File.Delete(partial);
            if (e is IOException or UnauthorizedAccessException)
                throw new DatasetException(cachePath, $"cannot write the raw cache ({e.Message})", "Check free disk space and write permission, or pick another cache path", e);
            throw;
        }
        return ImageDataset.OpenMapped(cachePath);
    }

    /// <summary><see cref="IImageSource.Read"/> with operating-system read failures turned into <see cref="DatasetException"/>.</summary>
    internal static IEnumerable<SourceImage> ReadGuarded(IImageSource source, int n)
    {
        using var e = source.Read(n).GetEnumerator();
        while (true)
        {
            try
            {
                if (!e.MoveNext()) yield break;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw ReadError(source.Path, ex);
            }
            yield return e.Current;
        }
    }

    internal static void CheckSameShape(IImageSource source, SourceImage first, SourceImage img)
    {
        if (img.Channels != first.Channels)
            throw new DatasetException(source.Path, img.Entry,
                $"has {img.Channels} channel(s) but '{first.Entry}' has {first.Channels}; all images of a dataset need one channel count",
                "Convert all images to RGB (or all to grayscale)");
        if (img.Height != first.Height || img.Width != first.Width)
            throw new DatasetException(source.Path, img.Entry,
                $"is {img.Width}x{img.Height} but '{first.Entry}' is {first.Width}x{first.Height}; all images of a dataset need one resolution",
                "Run 'ect data prepare --source ... --dest out.zip --resolution N' to bring them all to N x N");
    }

    private static string? FindIdxImages(string dir, DatasetSplit split)
    {
        var files = Directory.GetFiles(dir).Where(f => Path.GetFileName(f).Contains("idx3", StringComparison.OrdinalIgnoreCase)).OrderBy(f => f, StringComparer.Ordinal).ToList();
        if (files.Count == 0) return null;
        var prefix = split == DatasetSplit.Train ? "train" : "t10k";
        return files.FirstOrDefault(f => Path.GetFileName(f).StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            ?? (split == DatasetSplit.Test ? files.FirstOrDefault(f => Path.GetFileName(f).StartsWith("test", StringComparison.OrdinalIgnoreCase)) : null)
            ?? files[0];
    }
}
