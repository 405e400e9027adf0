using System.Text.Json;
using Ect.Actors.Inspection;

namespace Ect.Actors.Run;

/// <summary>
/// The metadata of a checkpoint file as the trainer wrote it (step, phase, run-id, ...), from either format:
/// the torch engine's safetensors (keys with the "user." prefix, which is dropped here) or the fake engine's own.
/// Reads headers only. Null when the file is neither (corrupt, truncated): the resume point's SHA-256 check
/// is what refuses such a file.
/// </summary>
public static class CheckpointMetadata
{
    public const uint FakeMagic = 0xEC7FA4E1;
    private const string User = "user.";

    public static IReadOnlyDictionary<string, string>? Read(string path)
    {
        try
        {
            using (var f = File.OpenRead(path))
            using (var r = new BinaryReader(f))
            {
                if (f.Length >= 8 && r.ReadUInt32() == FakeMagic)
                {
                    var json = r.ReadString();
                    return json.Length > 1 << 20 ? null : JsonSerializer.Deserialize<Dictionary<string, string>>(json);
                }
            }
            var m = SafetensorsFile.Open(path).Metadata;
            return m.Where(kv => kv.Key.StartsWith(User, StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key[User.Length..], kv => kv.Value, StringComparer.Ordinal);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or JsonException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    /// <summary>The checkpoint files in a run directory (checkpoints/ckpt-STEP.ckpt; temporary files excluded).</summary>
    public static IReadOnlyList<string> FilesIn(string runDir)
    {
        var dir = Path.Combine(runDir, Checkpointer.Folder);
        return Directory.Exists(dir) ? Directory.EnumerateFiles(dir, "ckpt-*.ckpt").Order(StringComparer.Ordinal).ToList() : [];
    }
}
