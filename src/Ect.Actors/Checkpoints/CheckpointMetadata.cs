using Ect.Actors.Run;
using Ect.Actors.Evaluation;
using Ect.Actors.Engine;
using Ect.Actors.Configuration;
using System.Text.Json;

namespace Ect.Actors.Checkpoints;

/// <summary>
/// The metadata of a checkpoint file as the trainer wrote it (step, phase, run-id, ...), from either format:
/// the torch engine's safetensors (keys with the "user." prefix, which is dropped here) or the fake engine's own.
/// Reads headers only. Null when the file is neither (corrupt, truncated): the resume point's SHA-256 check
/// is what refuses such a file.
/// </summary>
public static class CheckpointMetadata
{
    public const uint FakeMagic = 0xEC7FA4E1;
    private const string User = CheckpointFormat.UserPrefix;

    public static IReadOnlyDictionary<string, string>? Read(string path)
    {
        try { return ReadOrThrow(path); }
        catch (Exception e) when (e is IOException or InvalidDataException or JsonException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    /// <summary>
    /// The daemon's metadata (the keys of <see cref="CheckpointFormat"/>) of a fake-engine or a safetensors
    /// checkpoint; an IOException, InvalidDataException or JsonException says why a file cannot be read.
    /// </summary>
    public static IReadOnlyDictionary<string, string> ReadOrThrow(string path)
    {
        using (var f = File.OpenRead(path))
        using (var r = new BinaryReader(f))
        {
            if (f.Length >= 8 && r.ReadUInt32() == FakeMagic)
            {
                var json = r.ReadString();
                if (json.Length > 1 << 20) throw new InvalidDataException($"{path}: fake-engine metadata of {json.Length} characters (at most 1 MiB)");
                return JsonSerializer.Deserialize<Dictionary<string, string>>(json) ?? throw new InvalidDataException($"{path}: empty metadata");
            }
        }
        return SafetensorsFile.Open(path).Metadata
            .Where(kv => kv.Key.StartsWith(User, StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[User.Length..], kv => kv.Value, StringComparer.Ordinal);
    }

    /// <summary>The checkpoint files in a run directory (checkpoints/ckpt-STEP.ckpt; temporary files excluded).</summary>
    public static IReadOnlyList<string> FilesIn(string runDir)
    {
        var dir = Path.Combine(runDir, Checkpointer.Folder);
        return Directory.Exists(dir) ? Directory.EnumerateFiles(dir, "ckpt-*.ckpt").Order(StringComparer.Ordinal).ToList() : [];
    }
}
