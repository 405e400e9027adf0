using System.Text.Json;
using System.Text.Json.Nodes;
using Ect.Actors.Configuration;
using Ect.Compute.IO;

namespace Ect.Actors.Run;

/// <summary>
/// Who a run is: a UUID made at its first start, a readable name (the run directory's name then) and the
/// persistence id of its event stream (journal and snapshots). Kept in RUN_DIR/run.json and in every
/// checkpoint's metadata (run-id, run-name, run-journal-id), so a journal shared by many runs (PostgreSQL)
/// holds one stream per run, and a run directory and a journal that do not belong together can be told apart
/// (<see cref="RunAgreement"/>).
/// </summary>
public sealed record RunIdentity(string Id, string Name, string PersistenceId)
{
    public const string FileName = "run.json";
    public const string Format = "ect-run/1";

    /// <summary>The one persistence id every run used before runs had an identity (one SQLite journal per run directory).</summary>
    public const string LegacyPersistenceId = "ect-run";

    /// <summary>Checkpoint metadata keys (the torch engine's safetensors files store them with the "user." prefix).</summary>
    public const string IdKey = "run-id", NameKey = "run-name", PersistenceIdKey = "run-journal-id";

    public bool IsLegacy => PersistenceId == LegacyPersistenceId;

    /// <summary>A new run in <paramref name="runDir"/>: a fresh UUID, named after the directory.</summary>
    public static RunIdentity New(string runDir)
    {
        var id = Guid.NewGuid().ToString("D");
        return new RunIdentity(id, NameOf(runDir), "ect-run-" + id);
    }

    /// <summary>A run whose journal was written before identities: its stream keeps the old persistence id.</summary>
    public static RunIdentity Legacy(string runDir) => new(Guid.NewGuid().ToString("D"), NameOf(runDir), LegacyPersistenceId);

    public static string NameOf(string runDir) => Path.GetFileName(FullPath(runDir)) is { Length: > 0 } n ? n : "run";

    /// <summary>The absolute path without a trailing separator (how run directories are recorded and compared).</summary>
    public static string FullPath(string dir) => Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir));

    public IReadOnlyDictionary<string, string> Metadata => new Dictionary<string, string>
    {
        [IdKey] = Id, [NameKey] = Name, [PersistenceIdKey] = PersistenceId,
    };

    /// <summary>From a checkpoint's metadata (null when it has none: written before identities).</summary>
    public static RunIdentity? FromMetadata(IReadOnlyDictionary<string, string> m) =>
        m.TryGetValue(IdKey, out var id) && id.Length > 0
            ? new RunIdentity(id, m.GetValueOrDefault(NameKey) ?? "", m.GetValueOrDefault(PersistenceIdKey) is { Length: > 0 } p ? p : "ect-run-" + id)
            : null;

    /// <summary>The run directory's identity, or null when it has no run.json. Throws ConfigurationException on a bad file.</summary>
    public static RunIdentity? Read(string runDir)
    {
        var path = Path.Combine(runDir, FileName);
        if (!File.Exists(path)) return null;
        string Fix() => $"restore {path} from a backup, or delete it: the next `ect train` re-creates it from the checkpoints' metadata";
        JsonNode? root;
        try
        {
            var info = new FileInfo(path);
            if (info.Length > 64 * 1024) throw new ConfigurationException($"{path} is {info.Length} bytes, not a run identity (a few hundred bytes): {Fix()}.");
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e) { throw new ConfigurationException($"{path} is not valid JSON ({e.Message}): {Fix()}."); }
        catch (IOException e) { throw new ConfigurationException($"{path} cannot be read ({e.Message})."); }
        catch (UnauthorizedAccessException e) { throw new ConfigurationException($"{path} cannot be read ({e.Message})."); }
        string Field(string name)
        {
            var v = root is JsonObject o && o[name] is JsonValue jv && jv.TryGetValue<string>(out var s) ? s : null;
            if (string.IsNullOrWhiteSpace(v) || v.Length > 200 || v.Any(char.IsControl))
                throw new ConfigurationException($"{path}: field \"{name}\" is missing or not a short string: {Fix()}.");
            return v;
        }
        var format = Field("format");
        if (format != Format) throw new ConfigurationException($"{path}: format \"{format}\", expected \"{Format}\" (written by a newer ect?).");
        return new RunIdentity(Field("id"), Field("name"), Field("persistence-id"));
    }

    /// <summary>Writes run.json atomically (temporary file, fsync, rename, fsync of the directory).</summary>
    public void Write(string runDir)
    {
        var path = Path.Combine(runDir, FileName);
        var tmp = path + ".tmp";
        var json = new JsonObject
        {
            ["format"] = Format, ["id"] = Id, ["name"] = Name, ["persistence-id"] = PersistenceId,
            ["created-utc"] = DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture),
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write)) f.Write(System.Text.Encoding.UTF8.GetBytes(json + "\n"));
        AtomicFile.Commit(tmp, path);
    }

    /// <summary>The persistence id of the run in <paramref name="runDir"/> (the legacy one when it has no run.json).</summary>
    public static string PersistenceIdOf(string runDir) => Read(runDir)?.PersistenceId ?? LegacyPersistenceId;

    public override string ToString() => $"{Name} ({Id})";
}
