using System.Security.Cryptography;
using System.Text;
using Ect.Compute.IO;

namespace Ect.Actors.Cluster;

/// <summary>
/// The sweep cluster's shared secret: RUN_ROOT/cluster.token (64 hex characters, file mode 0600), made by the first
/// `ect node` of a run root and read by every other node (the run root is one folder every node sees) and by
/// `ect sweep ... --cluster` / `ect ctl --run ... --cluster` (--token-file). Nodes refuse a client request whose token
/// does not match (<see cref="Matches"/>, constant time) and sign every node-to-node sweep message with it
/// (<see cref="ClusterSweepSerializer"/>), so a local process that can reach a node's port but cannot read the run
/// root can neither submit, cancel, query nor control runs. (Membership is guarded by TLS alone, on by default with
/// RUN_ROOT/cluster.pfx: see <see cref="ClusterCertificate"/>; with --insecure-no-tls a local process that speaks Akka
/// could join the cluster itself.)
/// </summary>
public static class ClusterToken
{
    public const string FileName = "cluster.token";

    public static string PathIn(string runRoot) => Path.Combine(runRoot, FileName);

    /// <summary>
    /// Reads RUN_ROOT/cluster.token, creating it first when missing (written to a 0600 temporary file and moved into
    /// place without overwriting: two nodes starting at once on one run root end with the same token). Throws
    /// <see cref="IOException"/> naming the file and the fix when it cannot be written or read.
    /// </summary>
    public static string EnsureIn(string runRoot)
    {
        var path = PathIn(runRoot);
        if (!File.Exists(path))
        {
            var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
            var tmp = $"{path}.{Environment.ProcessId}.tmp";
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            try
            {
                using (var f = new FileStream(tmp, options)) f.Write(Encoding.ASCII.GetBytes(token));
                AtomicFile.Commit(tmp, path, overwrite: false);
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another node made it first: use theirs.
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"cluster token file {path} cannot be written ({e.Message}): fix the permissions of the run root or free disk space.", e);
            }
            finally
            {
                try { File.Delete(tmp); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* best effort */ }
            }
        }
        return Read(path);
    }

    /// <summary>Reads a token file; throws <see cref="IOException"/> naming the file and the fix when it is missing, unreadable or not a token.</summary>
    public static string Read(string path)
    {
        string text;
        try { text = File.ReadAllText(path).Trim(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cluster token file {path} cannot be read ({e.Message}): the first `ect node` writes RUN_ROOT/{FileName}; " +
                                  "give --token-file that file (readable by you only).", e);
        }
        if (text.Length < 16 || !text.All(c => c is >= '!' and <= '~'))
            throw new IOException($"cluster token file {path} does not hold a token (16+ printable characters; `ect node` writes 64 hex digits): " +
                                  "delete it while no node runs, and start the nodes again to make a new one.");
        return text;
    }

    /// <summary>Constant-time comparison (FixedTimeEquals returns early only on a length difference, which reveals the length: public, 64).</summary>
    public static bool Matches(string expected, string? presented) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented ?? ""), Encoding.UTF8.GetBytes(expected));

    /// <summary>The refusal a client gets for a missing or wrong token (nothing was done).</summary>
    public const string Refused = "refused: the cluster token does not match RUN_ROOT/cluster.token of the nodes (give --token-file that file); nothing was done";
}
