using Ect.Actors.Run;
using Ect.Actors.Evaluation;
using Ect.Actors.Engine;
using Ect.Actors.Configuration;
using System.Globalization;

namespace Ect.Actors.Checkpoints;

/// <summary>What `ect inspect` shows about a checkpoint: run counters from __metadata__ and group digests.</summary>
public sealed record CheckpointSummary(
    string Path,
    string? Phase,
    long? Step,
    double? Kimg,
    int? Stage,
    string? ConfigDigest,
    string? WeightsDigest,
    string? EmaDigest,
    IReadOnlyDictionary<string, string> GroupDigests,
    IReadOnlyDictionary<string, string> Metadata,
    int TensorCount)
{
    // Metadata keys, first match wins: only keys something writes (CheckpointFormat). TrainState writes its TrainStep's
    // counters as ect.* and the daemon's strings as user.*; the daemon's are the run's (ect.step restarts at the start
    // of tuning, user.step does not). A file without the daemon's keys (TrainState alone) falls back to ect.*.
    private const string U = CheckpointFormat.UserPrefix;
    private static readonly string[] PhaseKeys = [U + CheckpointFormat.Phase];
    private static readonly string[] StepKeys = [U + CheckpointFormat.Step, "ect.step"];
    private static readonly string[] KimgKeys = [U + CheckpointFormat.Kimg];
    private static readonly string[] ImagesKeys = ["ect.images"];
    private static readonly string[] StageKeys = [U + CheckpointFormat.Stage, "ect.stage"];
    private static readonly string[] ConfigDigestKeys = [U + CheckpointFormat.ConfigDigest];

    public static CheckpointSummary Of(string path)
    {
        var file = SafetensorsFile.Open(path);
        var m = file.Metadata;
        var groups = CheckpointDigest.ByGroup(file);
        var kimg = Double(m, KimgKeys) ?? (Double(m, ImagesKeys) is { } images ? images / 1000.0 : null);
        return new CheckpointSummary(path, First(m, PhaseKeys), Long(m, StepKeys), kimg,
            Long(m, StageKeys) is { } s ? (int)s : null, First(m, ConfigDigestKeys),
            groups.GetValueOrDefault("net") ?? groups.GetValueOrDefault("model") ?? groups.GetValueOrDefault(""),
            groups.GetValueOrDefault("ema"),
            groups, m, file.Tensors.Count);
    }

    /// <summary>
    /// The checkpoint to inspect for a run directory: among its *.ckpt (the daemon's checkpoints/ckpt-STEP.ckpt,
    /// safetensors inside) and *.safetensors files, at any depth, skipping temporary and dot-files, the one with
    /// the highest step in its metadata, then the newest.
    /// </summary>
    public static string LatestIn(string runDir)
    {
        var files = new[] { "*.ckpt", "*.safetensors" }
            .SelectMany(p => Directory.EnumerateFiles(runDir, p, SearchOption.AllDirectories))
            .Where(f => !System.IO.Path.GetFileName(f).StartsWith('.'))
            .ToList();
        if (files.Count == 0)
            throw new FileNotFoundException($"'{runDir}' holds no checkpoint (*.ckpt, *.safetensors): has the run written one yet? `ect ctl checkpoint` asks for one.");
        return files
            .Select(f => (File: f, Step: StepOf(f), Time: File.GetLastWriteTimeUtc(f)))
            .OrderByDescending(x => x.Step ?? -1).ThenByDescending(x => x.Time)
            .First().File;
    }

    private static long? StepOf(string file)
    {
        try { return Long(SafetensorsFile.Open(file).Metadata, StepKeys); }
        catch (InvalidDataException) { return null; }
    }

    private static string? First(IReadOnlyDictionary<string, string> m, string[] keys) =>
        keys.Select(k => m.GetValueOrDefault(k)).FirstOrDefault(v => v is not null);

    private static long? Long(IReadOnlyDictionary<string, string> m, string[] keys) =>
        long.TryParse(First(m, keys), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;

    private static double? Double(IReadOnlyDictionary<string, string> m, string[] keys) =>
        double.TryParse(First(m, keys), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : null;
}
