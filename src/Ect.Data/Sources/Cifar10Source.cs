using System.Formats.Tar;
using System.IO.Compression;

namespace Ect.Data.Sources;

/// <summary>Which part of a dataset with a fixed split (CIFAR-10, a folder of IDX files) to read.</summary>
public enum DatasetSplit { Train, Test }

/// <summary>
/// CIFAR-10, binary version (cifar-10-binary.tar.gz): records of 1 label byte + 3072 pixel bytes (1024 R, 1024 G,
/// 1024 B, rows top to bottom), 10,000 per file. Train = data_batch_1..5.bin, test = test_batch.bin. Read from the
/// folder (the files directly in it or in cifar-10-batches-bin/) or straight from the .tar.gz (System.Formats.Tar).
/// </summary>
public sealed class Cifar10Source : IImageSource
{
    public const int RecordBytes = 1 + 3 * 32 * 32;

    /// <summary>
    /// Largest batch file read: 100,000 records (a CIFAR-10 batch holds 10,000, 30.7 MB). Checked against the file's
    /// or the tar header's size before anything is read or allocated.
    /// </summary>
    public const long MaxBatchBytes = 100_000L * RecordBytes;
    public static readonly string[] TrainFiles = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
    public static readonly string[] TestFiles = ["test_batch.bin"];
    private static readonly string[] DefaultClassNames = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    private readonly List<(string Name, byte[] Data)> _files = new();

    public string Path { get; }
    public string Format { get; }
    public int Count { get; }
    public bool HasLabels => true;
    public IReadOnlyList<string>? ClassNames { get; private set; } = DefaultClassNames;
    public DatasetSplit Split { get; }

    public Cifar10Source(string path, DatasetSplit split = DatasetSplit.Train)
    {
        Path = path;
        Split = split;
        var wanted = split == DatasetSplit.Train ? TrainFiles : TestFiles;
        if (Directory.Exists(path))
        {
            Format = "CIFAR-10 binary folder";
            var dir = FindBatchFolder(path)
                ?? throw new DatasetException(path, "no CIFAR-10 binary batch files (data_batch_1.bin ... test_batch.bin) in this folder or in cifar-10-batches-bin/",
                    "Point --source at the extracted cifar-10-batches-bin folder or at cifar-10-binary.tar.gz");
            foreach (var name in wanted)
            {
                var f = System.IO.Path.Combine(dir, name);
                if (!File.Exists(f))
                    throw new DatasetException(f, $"CIFAR-10 batch file missing (the {split.ToString().ToLowerInvariant()} split needs {string.Join(", ", wanted)})",
                        "Re-extract cifar-10-binary.tar.gz so all batch files are present");
                CheckBatchSize(f, null, new FileInfo(f).Length);
                _files.Add((f, File.ReadAllBytes(f)));
            }
            var meta = System.IO.Path.Combine(dir, "batches.meta.txt");
            if (File.Exists(meta)) ReadNames(File.ReadAllText(meta));
        }
        else if (File.Exists(path))
        {
            Format = "CIFAR-10 binary .tar.gz";
            ReadTarGz(path, wanted);
        }
        else
        {
            throw new DatasetException(path, "does not exist", "Check the path to the CIFAR-10 folder or cifar-10-binary.tar.gz");
        }
        long total = 0;
        foreach (var (name, data) in _files)
        {
            if (data.Length == 0 || data.Length % RecordBytes != 0)
                throw new DatasetException(name,
                    $"{data.Length} bytes is not a whole number of {RecordBytes}-byte CIFAR-10 records ({data.Length / RecordBytes} whole records and {data.Length % RecordBytes} bytes over); the file is truncated or not the binary version",
                    "Re-download cifar-10-binary.tar.gz (the binary version, not the python or matlab one)");
            for (int r = 0; r < data.Length; r += RecordBytes)
                if (data[r] > 9)
                    throw new DatasetException(name, $"record {r / RecordBytes} has label {data[r]}, CIFAR-10 labels are 0-9",
                        "The file is not a CIFAR-10 binary batch (CIFAR-100 has 2 label bytes): use cifar-10-binary.tar.gz");
            total = checked(total + data.Length / RecordBytes);
        }
        Count = checked((int)total);
    }

    /// <summary>The folder holding the batch files: <paramref name="path"/> itself or its cifar-10-batches-bin/ child.</summary>
    public static string? FindBatchFolder(string path)
    {
        foreach (var d in new[] { path, System.IO.Path.Combine(path, "cifar-10-batches-bin") })
            if (Directory.Exists(d) && (File.Exists(System.IO.Path.Combine(d, "data_batch_1.bin")) || File.Exists(System.IO.Path.Combine(d, "test_batch.bin"))))
                return d;
        return null;
    }

    private void ReadNames(string text)
    {
        var names = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (names.Length == 10) ClassNames = names;
    }

    private void ReadTarGz(string path, string[] wanted)
    {
        var found = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        try
        {
            using var fs = File.OpenRead(path);
            using var gz = new GZipStream(fs, CompressionMode.Decompress);
            using var tar = new TarReader(gz);
            while (tar.GetNextEntry() is { } entry)
            {
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || entry.DataStream is null) continue;
                var name = System.IO.Path.GetFileName(entry.Name);
                if (Array.IndexOf(wanted, name) < 0 && name != "batches.meta.txt") continue;
                // The tar header's size, checked before reading; the copy stops there whatever the stream holds.
                CheckBatchSize(path, entry.Name, entry.Length);
                using var ms = new MemoryStream();
                try { CopyAtMost(entry.DataStream, ms, MaxBatchBytes, path, entry.Name); }
                catch (EndOfStreamException e)
                {
                    throw new DatasetException(path, entry.Name, "the archive ends inside this entry (truncated download)", "Re-download cifar-10-binary.tar.gz", e);
                }
                if (name == "batches.meta.txt") ReadNames(System.Text.Encoding.ASCII.GetString(ms.ToArray()));
                else found[name] = ms.ToArray();
            }
        }
        catch (InvalidDataException e)
        {
            throw new DatasetException(path, $"not a readable .tar.gz ({e.Message})", "Re-download cifar-10-binary.tar.gz or extract it and pass the folder", e);
        }
        catch (EndOfStreamException e)
        {
            throw new DatasetException(path, "the archive is truncated", "Re-download cifar-10-binary.tar.gz", e);
        }
        catch (FormatException e)
        {
            throw new DatasetException(path, $"not a valid tar archive inside the gzip ({e.Message})", "Re-download cifar-10-binary.tar.gz", e);
        }
        foreach (var name in wanted)
        {
            if (!found.TryGetValue(name, out var data))
                throw new DatasetException(path, name, "this CIFAR-10 batch is missing from the archive (or the archive is truncated before it)",
                    "Re-download cifar-10-binary.tar.gz (the binary version)");
            _files.Add(($"{path}!{name}", data));
        }
    }

    private static void CheckBatchSize(string file, string? entry, long bytes)
    {
        if (bytes <= MaxBatchBytes) return;
        throw new DatasetException(file, entry,
            $"is {bytes:N0} bytes; a CIFAR-10 batch file holds 10,000 records of {RecordBytes} bytes ({10_000L * RecordBytes:N0}) and at most {MaxBatchBytes:N0} bytes are read",
            "The file or the archive is corrupt or not CIFAR-10: re-download cifar-10-binary.tar.gz");
    }

    private static void CopyAtMost(Stream from, Stream to, long limit, string file, string entry)
    {
        var buf = new byte[1 << 16];
        long copied = 0;
        int n;
        while ((n = from.Read(buf)) > 0)
        {
            copied += n;
            if (copied > limit) CheckBatchSize(file, entry, copied);
            to.Write(buf, 0, n);
        }
    }

    public IEnumerable<SourceImage> Read(int? max = null)
    {
        int n = Math.Min(Count, max ?? Count), i = 0;
        foreach (var (name, data) in _files)
        {
            for (int r = 0; r < data.Length && i < n; r += RecordBytes, i++)
            {
                // The record's pixel bytes are already CHW (R plane, G plane, B plane), the dataset's layout.
                var px = data.AsSpan(r + 1, RecordBytes - 1).ToArray();
                yield return new SourceImage($"{System.IO.Path.GetFileName(name)}[{r / RecordBytes}]", 3, 32, 32, px, data[r]);
            }
        }
    }

    public void Dispose() { }
}
