using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Ect.Compute.IO;

namespace Ect.Compute.Evaluation;

/// <summary>
/// Mean and unbiased covariance (divided by N-1, like <c>np.cov(rowvar=False)</c>) of N feature vectors, in float64.
/// Built by <see cref="FeatureStatisticsAccumulator"/> without keeping the features. Saved as one self-contained
/// <c>.ectstats</c> file (see <see cref="Save"/>; format in docs/evaluation.md).
/// </summary>
public sealed class FeatureStatistics
{
    /// <summary>File magic of the <c>.ectstats</c> format, version 1.</summary>
    public const string Magic = "ECTSTAT1";

    public FeatureStatistics(double[] mean, double[] covariance, long count, string extractorName = "", string key = "")
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(covariance);
        if (mean.Length == 0) throw new ArgumentException("Feature statistics need a dimension of at least 1.", nameof(mean));
        if (covariance.Length != (long)mean.Length * mean.Length)
            throw new ArgumentException(
                $"Covariance must hold dimension^2 = {(long)mean.Length * mean.Length} values (row-major); got {covariance.Length}.",
                nameof(covariance));
        if (count < 2) throw new ArgumentException($"Feature statistics need at least 2 samples (covariance divides by N-1); got {count}.", nameof(count));
        Mean = mean;
        Covariance = covariance;
        Count = count;
        ExtractorName = extractorName ?? "";
        Key = key ?? "";
    }

    /// <summary>Feature dimension d.</summary>
    public int Dimension => Mean.Length;

    /// <summary>Number of feature vectors N the statistics were computed from.</summary>
    public long Count { get; }

    /// <summary>Mean, length d.</summary>
    public double[] Mean { get; }

    /// <summary>Unbiased covariance, d x d row-major (length d*d), symmetric.</summary>
    public double[] Covariance { get; }

    /// <summary>Name of the extractor that produced the features (e.g. "FD-ResNet18"); empty if unknown.</summary>
    public string ExtractorName { get; }

    /// <summary>Free-form identity (a cache key: dataset hash, extractor, count); empty if none.</summary>
    public string Key { get; }

    /// <summary>True when N &lt;= d: the covariance has rank at most N-1 &lt; d (rank-deficient).</summary>
    public bool IsRankDeficient => Count <= Dimension;

    /// <summary>A user-facing warning when the sample is small for the dimension, otherwise null.</summary>
    public string? Warning => RankWarning(Count, Dimension, ExtractorName);

    /// <summary>The warning text for N samples of dimension d, or null when N &gt; d.</summary>
    public static string? RankWarning(long count, int dimension, string extractorName = "")
    {
        if (count > dimension) return null;
        var what = string.IsNullOrEmpty(extractorName) ? "" : $" ({extractorName})";
        return $"Only {count} feature vectors for dimension {dimension}{what}: the covariance has rank at most {count - 1} < {dimension} " +
               "(rank-deficient), so the Frechet distance is strongly biased upwards and not comparable with values computed from more " +
               $"images. Use more than {dimension} images (the usual protocol is 10,000 or 50,000).";
    }

    /// <summary>Covariance entry (i, j).</summary>
    public double Cov(int i, int j) => Covariance[(long)i * Dimension + j];

    /// <summary>
    /// Writes the statistics to <paramref name="path"/>: 8 bytes ASCII magic "ECTSTAT1", a little-endian int64 header
    /// length L, L bytes of UTF-8 JSON (format, version, dimension, count, extractor, key, dtype, byte order), then the
    /// mean (d float64) and the covariance (d*d float64, row-major), little-endian. Written to a temporary file and moved
    /// into place, so a crash never leaves a half-written file under the final name.
    /// </summary>
    public void Save(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        var header = new StatsHeader
        {
            Format = "ect-feature-statistics", Version = 1, Dimension = Dimension, Count = Count,
            Extractor = ExtractorName, Key = Key, DType = "float64", ByteOrder = "little",
            Layout = "mean[dimension] then covariance[dimension*dimension] row-major, unbiased (N-1)",
        };
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        var tmp = path + ".tmp-" + Environment.ProcessId;
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            Span<byte> b8 = stackalloc byte[8];
            fs.Write(Encoding.ASCII.GetBytes(Magic));
            BinaryPrimitives.WriteInt64LittleEndian(b8, json.Length);
            fs.Write(b8);
            fs.Write(json);
            WriteDoubles(fs, Mean);
            WriteDoubles(fs, Covariance);
        }
        AtomicFile.Commit(tmp, path);
    }

    private const int MaxDimension = 1 << 16;

    /// <summary>Reads a file written by <see cref="Save"/>; clear errors for a wrong or truncated file.</summary>
    public static FeatureStatistics Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"Feature statistics file '{path}' does not exist.", path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var magic = new byte[8];
        if (fs.Read(magic) != 8 || Encoding.ASCII.GetString(magic) != Magic)
            throw new InvalidDataException($"'{path}' is not an ECT feature statistics file (missing '{Magic}' magic).");
        var b8 = new byte[8];
        fs.ReadExactly(b8);
        var headerLength = BinaryPrimitives.ReadInt64LittleEndian(b8);
        if (headerLength <= 0 || headerLength > 1 << 20 || 16 + headerLength > fs.Length)
            throw new InvalidDataException($"'{path}': bad header length {headerLength} (file truncated or corrupt).");
        var json = new byte[headerLength];
        fs.ReadExactly(json);
        StatsHeader header;
        try { header = JsonSerializer.Deserialize<StatsHeader>(json) ?? throw new InvalidDataException("empty header"); }
        catch (JsonException e) { throw new InvalidDataException($"'{path}': unreadable JSON header ({e.Message}).", e); }
        if (header.Version != 1 || header.DType != "float64" || header.ByteOrder != "little")
            throw new InvalidDataException(
                $"'{path}': unsupported statistics file (version {header.Version}, dtype {header.DType}, byte order {header.ByteOrder}); this build reads version 1, float64, little.");
        var d = header.Dimension;
        // Feature networks give 512-2,048 dimensions; the cap keeps 8 * (d + d^2) below 2^63, so the length check
        // below cannot be satisfied by a wrapped product (and a corrupt header cannot ask for a 2^60-byte array).
        if (d <= 0 || d > MaxDimension) throw new InvalidDataException($"'{path}': bad dimension {d} (1-{MaxDimension}); delete it to recompute.");
        var expected = 16 + headerLength + 8L * (d + (long)d * d);
        if (fs.Length != expected)
            throw new InvalidDataException(
                $"'{path}': file is {fs.Length} bytes, expected {expected} for dimension {d} (truncated or corrupt); delete it to recompute.");
        var mean = ReadDoubles(fs, d);
        var cov = ReadDoubles(fs, (long)d * d);
        return new FeatureStatistics(mean, cov, header.Count, header.Extractor ?? "", header.Key ?? "");
    }

    static void WriteDoubles(Stream s, double[] values)
    {
        var bytes = new byte[values.Length * 8L];
        for (long i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan((int)(i * 8), 8), values[i]);
        s.Write(bytes);
    }

    static double[] ReadDoubles(Stream s, long n)
    {
        var bytes = new byte[n * 8];
        s.ReadExactly(bytes);
        var values = new double[n];
        for (long i = 0; i < n; i++)
            values[i] = BinaryPrimitives.ReadDoubleLittleEndian(bytes.AsSpan((int)(i * 8), 8));
        return values;
    }

    sealed class StatsHeader
    {
        [JsonPropertyName("format")] public string? Format { get; set; }
        [JsonPropertyName("version")] public int Version { get; set; }
        [JsonPropertyName("dimension")] public int Dimension { get; set; }
        [JsonPropertyName("count")] public long Count { get; set; }
        [JsonPropertyName("extractor")] public string? Extractor { get; set; }
        [JsonPropertyName("key")] public string? Key { get; set; }
        [JsonPropertyName("dtype")] public string? DType { get; set; }
        [JsonPropertyName("byte_order")] public string? ByteOrder { get; set; }
        [JsonPropertyName("layout")] public string? Layout { get; set; }
    }
}
