using System.IO.Compression;
using System.Text.Json;
using System.Text.RegularExpressions;
using Ect.Data.Imaging;

namespace Ect.Data.Sources;

/// <summary>
/// Image files in a zip or a folder. Three layouts:
/// <list type="bullet">
/// <item>EDM's dataset format (what EDM's dataset_tool writes and its ImageFolderDataset reads): image files anywhere
/// in the zip/folder, taken in ordinal order of their relative path (as EDM sorts them), plus an optional root
/// <c>dataset.json</c> with <c>{"labels": [[relative_name, class], ...]}</c> or <c>{"labels": null}</c>.</item>
/// <item>A folder with one sub-folder per class (no dataset.json, no images at the root): the class of an image is
/// the ordinal rank of its sub-folder's name, as torchvision's ImageFolder does.</item>
/// <item>A plain folder of images: unlabelled.</item>
/// </list>
/// </summary>
public sealed partial class ImageFilesSource : IImageSource
{
    private readonly ZipArchive? _zip;
    private readonly Dictionary<string, ZipArchiveEntry>? _entries;
    private readonly string[] _names;
    private readonly int[]? _labels;
    private readonly string? _root;

    public string Path { get; }
    public string Format { get; }
    public int Count => _names.Length;
    public bool HasLabels => _labels is not null;
    public IReadOnlyList<string>? ClassNames { get; }
    /// <summary>The images' relative names (forward slashes), in dataset order.</summary>
    public IReadOnlyList<string> Names => _names;

    [GeneratedRegex(@"^\d{5}$")] private static partial Regex EdmShardFolder();

    public ImageFilesSource(string path)
    {
        Path = path;
        string? json = null;
        List<string> names;
        if (Directory.Exists(path))
        {
            _root = path;
            names = Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
                .Select(f => System.IO.Path.GetRelativePath(path, f).Replace('\\', '/'))
                .Where(ImageDecoder.IsImageName).ToList();
            var jsonPath = System.IO.Path.Combine(path, "dataset.json");
            if (File.Exists(jsonPath))
            {
                CheckJsonSize(jsonPath, null, new FileInfo(jsonPath).Length);
                json = File.ReadAllText(jsonPath);
            }
            bool rootImages = names.Any(n => !n.Contains('/'));
            var topFolders = names.Where(n => n.Contains('/')).Select(n => n[..n.IndexOf('/')]).Distinct().ToList();
            if (json is null && !rootImages && topFolders.Count > 0 && !topFolders.All(f => EdmShardFolder().IsMatch(f)))
            {
                Format = "image folder with class sub-folders";
                var classes = topFolders.OrderBy(f => f, StringComparer.Ordinal).ToList();
                ClassNames = classes;
                names.Sort(StringComparer.Ordinal);
                _names = names.ToArray();
                _labels = _names.Select(n => classes.IndexOf(n[..n.IndexOf('/')])).ToArray();
                CheckNotEmpty();
                return;
            }
            Format = json is null ? "image folder" : "EDM dataset folder";
        }
        else if (File.Exists(path))
        {
            try
            {
                _zip = ZipFile.OpenRead(path);
            }
            catch (InvalidDataException e)
            {
                throw new DatasetException(path, $"is not a zip archive, or is cut short ({e.Message})",
                    "Pass a zip written by 'ect data prepare' or EDM's dataset_tool, or the folder of images itself", e);
            }
            Format = "EDM dataset zip";
            _entries = new Dictionary<string, ZipArchiveEntry>(StringComparer.Ordinal);
            foreach (var e in _zip.Entries)
            {
                if (e.FullName.EndsWith('/')) continue;
                var n = e.FullName.Replace('\\', '/');
                if (n == "dataset.json") json = ReadJsonEntry(path, e);
                else if (ImageDecoder.IsImageName(n)) _entries[n] = e;
            }
            names = _entries.Keys.ToList();
        }
        else
        {
            throw new DatasetException(path, "does not exist", "Check the path of --source");
        }
        names.Sort(StringComparer.Ordinal);
        _names = names.ToArray();
        CheckNotEmpty();
        if (json is not null) (_labels, ClassNames) = ParseLabels(json);
    }

    /// <summary>
    /// Largest dataset.json read: 1 GiB, about 25 million labels as dataset_tool writes them (ImageNet's 1.28 million
    /// take 50 MB). The size is checked before reading, and a zip entry is read no further than it (a zip's sizes are
    /// the archive's own claims).
    /// </summary>
    public const long MaxJsonBytes = 1L << 30;

    private static void CheckJsonSize(string file, string? entry, long bytes)
    {
        if (bytes <= MaxJsonBytes) return;
        throw new DatasetException(file, entry, $"dataset.json is {bytes:N0} bytes (the zip or file system says so); at most {MaxJsonBytes:N0} are read",
            "The archive is corrupt or crafted: recreate it with 'ect data prepare'");
    }

    private static string ReadJsonEntry(string zipPath, ZipArchiveEntry e)
    {
        CheckJsonSize(zipPath, "dataset.json", e.Length);
        try
        {
            using var s = e.Open();
            var buf = ReadBounded(s, e.Length, zipPath, "dataset.json");
            return System.Text.Encoding.UTF8.GetString(buf);
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or IOException)
        {
            throw new DatasetException(zipPath, "dataset.json", $"cannot be read from the zip ({ex.Message})", "The zip is corrupt: recreate it with 'ect data prepare'", ex);
        }
    }

    /// <summary>
    /// Reads exactly <paramref name="length"/> bytes (a size the archive claims, already checked against a limit)
    /// and refuses a stream that holds more: a lying size never makes us allocate or read beyond it.
    /// </summary>
    private static byte[] ReadBounded(Stream s, long length, string file, string entry)
    {
        var buf = GC.AllocateUninitializedArray<byte>(checked((int)length));
        s.ReadExactly(buf);
        if (s.ReadByte() >= 0)
            throw new DatasetException(file, entry, $"holds more data than the {length:N0} bytes the zip directory says", "The zip is corrupt or crafted: recreate it with 'ect data prepare'");
        return buf;
    }

    private void CheckNotEmpty()
    {
        if (_names.Length == 0)
            throw new DatasetException(Path, $"the dataset is empty: no image files ({string.Join(", ", ImageDecoder.Extensions)}) found",
                "Point --source at a folder or zip that holds images");
    }

    private string JsonName => _zip is null ? System.IO.Path.Combine(Path, "dataset.json") : Path;
    private string? JsonEntry => _zip is null ? null : "dataset.json";

    private (int[]?, IReadOnlyList<string>?) ParseLabels(string json)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e)
        {
            throw new DatasetException(JsonName, JsonEntry, $"is not valid JSON ({e.Message})", "Fix dataset.json or delete it to use the images unlabelled", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("labels", out var labels) || labels.ValueKind == JsonValueKind.Null)
                return (null, null);
            if (labels.ValueKind != JsonValueKind.Array)
                throw new DatasetException(JsonName, JsonEntry, "\"labels\" is not a list of [file name, class] pairs", "Write {\"labels\": [[\"00000/img00000000.png\", 3], ...]} or {\"labels\": null}");
            var map = new Dictionary<string, int>(StringComparer.Ordinal);
            var known = new HashSet<string>(_names, StringComparer.Ordinal);
            foreach (var pair in labels.EnumerateArray())
            {
                if (pair.ValueKind != JsonValueKind.Array || pair.GetArrayLength() != 2 || pair[0].ValueKind != JsonValueKind.String
                    || pair[1].ValueKind != JsonValueKind.Number || !pair[1].TryGetInt32(out var cls) || cls < 0)
                    throw new DatasetException(JsonName, JsonEntry, $"label entry {pair.GetRawText()} is not a [file name, class index >= 0] pair",
                        "Each label must be [\"relative/name.png\", integer class]");
                var name = pair[0].GetString()!.Replace('\\', '/');
                if (!known.Contains(name))
                    throw new DatasetException(JsonName, JsonEntry, $"labels name '{name}', which is not an image in the dataset",
                        "Remove that label from dataset.json or add the missing image");
                map[name] = cls;
            }
            var result = new int[_names.Length];
            for (int i = 0; i < _names.Length; i++)
                if (!map.TryGetValue(_names[i], out result[i]))
                    throw new DatasetException(JsonName, JsonEntry, $"has no label for image '{_names[i]}' ({map.Count} labels for {_names.Length} images)",
                        "Give every image a label in dataset.json, or set \"labels\": null to use the set unlabelled");
            return (result, null);
        }
    }

    /// <summary>The raw bytes of image <paramref name="index"/>.</summary>
    public byte[] ReadBytes(int index)
    {
        var name = _names[index];
        if (_zip is null)
        {
            var file = System.IO.Path.Combine(_root!, name);
            CheckFileSize(file, null, new FileInfo(file).Length);
            return File.ReadAllBytes(file);
        }
        var e = _entries![name];
        // The zip directory's claim, checked before anything is allocated for it.
        CheckFileSize(Path, name, e.Length);
        try
        {
            using var s = e.Open();
            return ReadBounded(s, e.Length, Path, name);
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or IOException)
        {
            throw new DatasetException(Path, name, $"cannot be read from the zip ({ex.Message})", "The zip is corrupt: recreate it with 'ect data prepare'", ex);
        }
    }

    private static void CheckFileSize(string file, string? entry, long bytes)
    {
        if (bytes <= ImageDecoder.MaxFileBytes) return;
        throw new DatasetException(file, entry, $"is {bytes:N0} bytes; image files of more than {ImageDecoder.MaxFileBytes:N0} bytes are not read",
            "Shrink the image (e.g. ImageMagick: mogrify -resize 4096x4096 FILE) or delete it; in a zip, a size this large means the archive is corrupt");
    }

    public int LabelOf(int index) => _labels is null ? -1 : _labels[index];

    /// <summary>Decodes image <paramref name="index"/> (thread-safe for folders; zip reads are serialised by the caller).</summary>
    public SourceImage Decode(int index, byte[] bytes)
    {
        string file = _zip is null ? System.IO.Path.Combine(Path, _names[index]) : Path;
        string? entry = _zip is null ? null : _names[index];
        var (c, h, w, px) = ImageDecoder.Decode(bytes, file, entry);
        return new SourceImage(_names[index], c, h, w, px, LabelOf(index));
    }

    /// <summary>Reads and decodes in chunks: bytes are read in order, decoding runs on 2 threads, output stays in order.</summary>
    public IEnumerable<SourceImage> Read(int? max = null)
    {
        int n = Math.Min(Count, max ?? Count);
        const int chunk = 256;
        var decoded = new SourceImage[chunk];
        var bytes = new byte[chunk][];
        var errors = new DatasetException?[chunk];
        for (int start = 0; start < n; start += chunk)
        {
            int m = Math.Min(chunk, n - start);
            for (int i = 0; i < m; i++) bytes[i] = ReadBytes(start + i);
            Array.Clear(errors);
            Parallel.For(0, m, new ParallelOptions { MaxDegreeOfParallelism = 2 }, i =>
            {
                try { decoded[i] = Decode(start + i, bytes[i]); }
                catch (DatasetException e) { errors[i] = e; }
            });
            // Report the first bad image in dataset order, whichever thread met it first.
            for (int i = 0; i < m; i++) if (errors[i] is { } err) throw err;
            for (int i = 0; i < m; i++) yield return decoded[i];
        }
    }

    public void Dispose() => _zip?.Dispose();
}
