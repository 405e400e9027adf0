using System.Security.Cryptography;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Data;

namespace Ect.Actors.Distributed;

/// <summary>
/// Each rank reads its own shard of every batch (issue 20: rank 0 no longer broadcasts images). A worker opens the
/// data set rank 0 trains on (rank 0's full path: on other machines the same path must hold the same files), with
/// the same sampler seed and options, checks it against rank 0's (size, image shape, a fingerprint of some images),
/// and for each step assembles its rows of the global batch that starts where rank 0 says.
/// </summary>
internal static class DataShard
{
    /// <summary>Images hashed into a <see cref="Fingerprint"/>: evenly spread, so a different or reordered copy differs.</summary>
    private const int FingerprintImages = 16;

    /// <summary>SHA-256 (first 16 hex) of the size, shape and a spread of images and labels: cheap (16 images) even for big sets.</summary>
    public static string Fingerprint(ImageDataset d)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> head = stackalloc byte[16];
        BitConverter.TryWriteBytes(head, d.Count);
        BitConverter.TryWriteBytes(head[4..], d.Channels);
        BitConverter.TryWriteBytes(head[8..], d.Height);
        BitConverter.TryWriteBytes(head[12..], d.Width);
        sha.AppendData(head);
        int n = Math.Min(FingerprintImages, d.Count);
        for (int k = 0; k < n; k++)
        {
            int i = (int)((long)k * (d.Count - 1) / Math.Max(1, n - 1));
            sha.AppendData(d.GetImage(i));
            if (d.HasLabels) sha.AppendData(BitConverter.GetBytes(d.GetLabel(i)));
        }
        return Convert.ToHexString(sha.GetHashAndReset())[..16].ToLowerInvariant();
    }

    /// <summary>Opens rank 0's data set on this rank as a source of shard <paramref name="rank"/> of <paramref name="size"/>; refuses a different one.</summary>
    public static DatasetBatchSource Open(RunSettings s, Packets.EngineSpec spec, int rank, int size)
    {
        DatasetBatchSource source;
        try
        {
            source = new DatasetBatchSource(spec.DataPath, s.BatchSize, s.Seed, s.Resolution, s.UseLabels, s.MaxImages);
        }
        catch (Exception e) { throw CannotOpen(spec, rank, e); }
        return Check(source, spec, rank, size);
    }

    /// <summary>The torch engine factory's pair (SongUNet or EDM2, as the configuration says) for a worker, its run directory <paramref name="scratch"/>.</summary>
    public static (ITrainingEngine Engine, DatasetBatchSource Source) OpenEngine(RunSettings s, Packets.EngineSpec spec, int rank, string scratch)
    {
        (ITrainingEngine, IBatchSource) pair;
        try { pair = Engines.Torch(s, scratch); }
        catch (Exception e) when (e is DatasetException or IOException) { throw CannotOpen(spec, rank, e); }
        return (pair.Item1, (DatasetBatchSource)pair.Item2);
    }

    private static InvalidDataException CannotOpen(Packets.EngineSpec spec, int rank, Exception e) =>
        new($"rank {rank} cannot open the data set rank 0 trains on ({spec.DataPath}): {e.Message} " +
            "Every rank reads the data itself: on other machines the same path must hold the same data set (copy it or use a shared file system).", e);

    /// <summary>Refuses (and disposes) <paramref name="source"/> unless it is rank 0's data set; else makes it a source of shard <paramref name="rank"/> of <paramref name="size"/>.</summary>
    public static DatasetBatchSource Check(DatasetBatchSource source, Packets.EngineSpec spec, int rank, int size)
    {
        var mine = (source.Dataset.Count, source.Resolution, source.Channels, Labels: source.LabelDim, Print: Fingerprint(source.Dataset));
        var rank0 = (spec.DataCount, spec.Resolution, spec.Channels, Labels: spec.LabelDim, Print: spec.DataFingerprint);
        if (mine != rank0)
        {
            source.Dispose();
            throw new InvalidDataException(
                $"rank {rank} opened {spec.DataPath} and found {mine.Count:N0} images, {mine.Channels}x{mine.Resolution}x{mine.Resolution}, {mine.Labels} label classes, fingerprint {mine.Print}; " +
                $"rank 0 trains on {rank0.DataCount:N0} images, {rank0.Channels}x{rank0.Resolution}x{rank0.Resolution}, {rank0.Labels} label classes, fingerprint {rank0.Print}. " +
                "Every rank reads its own shard of each batch: give every machine the same data set at that path.");
        }
        source.Shard = (rank, size);
        return source;
    }

    /// <summary>This rank's shard of the global batch that starts at <paramref name="start"/> (as rank 0 drew it).</summary>
    public static Batch At(DatasetBatchSource source, SamplerState start)
    {
        source.Restore(start.ToString());
        return source.Next();
    }
}
