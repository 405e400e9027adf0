using System.Text.Json;
using System.Text.Json.Serialization;
using Ect.Compute.IO;

namespace Ect.Actors.Control;

/// <summary>
/// RUN_DIR/control.json: where a running daemon's control endpoint listens. The daemon writes it once remoting
/// has bound its port (port 0 in the config means "any free port"); `ect ctl --run-dir` reads it.
/// </summary>
public sealed record ControlAddress(
    [property: JsonPropertyName("protocol")] string Protocol,
    [property: JsonPropertyName("system")] string System,
    [property: JsonPropertyName("hostname")] string Hostname,
    [property: JsonPropertyName("port")] int Port,
    [property: JsonPropertyName("path")] string Path)
{
    /// <summary>The actor path to select, e.g. akka.tcp://ect@127.0.0.1:40123/user/control.</summary>
    [JsonIgnore]
    public string SelectionPath => $"{Protocol}://{System}@{FormatHost(Hostname)}:{Port}{Path}";

    private static string FormatHost(string h) => h.Contains(':') && !h.StartsWith('[') ? $"[{h}]" : h;
}

public static class ControlAddressFile
{
    public const string FileName = "control.json";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static string PathIn(string runDir) => Path.Combine(runDir, FileName);

    /// <summary>Writes RUN_DIR/control.json atomically (AtomicFile: temp file, fsync, rename), so a reader never sees half a file.</summary>
    public static void Write(string runDir, ControlAddress address)
    {
        Directory.CreateDirectory(runDir);
        var path = PathIn(runDir);
        var tmp = path + ".tmp";
        try
        {
            File.WriteAllText(tmp, JsonSerializer.Serialize(address, Json));
            AtomicFile.Commit(tmp, path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch { /* best effort */ }
            throw new ControlException($"'{path}' cannot be written: {Run.IoError.Describe(e, tmp)}. Free disk space or fix the permissions of the run directory, then start again.", e);
        }
    }

    public static ControlAddress Read(string runDir)
    {
        var path = PathIn(runDir);
        if (!File.Exists(path))
            throw new ControlException(
                $"'{path}' does not exist: is a daemon (`ect train`) running with run directory '{runDir}'? " +
                "It writes this file once its control endpoint listens. Or give --address HOST:PORT --token-file FILE.");
        try
        {
            var a = JsonSerializer.Deserialize<ControlAddress>(File.ReadAllText(path), Json);
            if (a is null || string.IsNullOrEmpty(a.Hostname) || a.Port <= 0 || string.IsNullOrEmpty(a.System))
                throw new ControlException($"'{path}' lacks hostname, port or system; delete it and restart the daemon.");
            return a with { Protocol = string.IsNullOrEmpty(a.Protocol) ? "akka.tcp" : a.Protocol,
                            Path = string.IsNullOrEmpty(a.Path) ? ControlActor.Path : a.Path };
        }
        catch (JsonException e)
        {
            throw new ControlException($"'{path}' is not valid JSON ({e.Message}); delete it and restart the daemon.");
        }
    }
}

/// <summary>A user-facing control error: the message names the file/value and the fix.</summary>
public sealed class ControlException(string message, Exception? inner = null) : Exception(message, inner);
