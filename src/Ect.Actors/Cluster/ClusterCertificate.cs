using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Ect.Compute.IO;

namespace Ect.Actors.Cluster;

/// <summary>
/// The sweep cluster's default certificate: RUN_ROOT/cluster.pfx (a self-signed RSA-2048 certificate with its key,
/// PKCS#12 without a password, file mode 0600), made by the first `ect node` of a run root beside cluster.token and
/// loaded by every other node and by `ect sweep ... --cluster` / `ect ctl --run ... --cluster` (found beside
/// --token-file). Every holder presents it and pins its thumbprint (<see cref="ClusterTls"/>), so mutual TLS is on even
/// on loopback: Akka.Cluster trusts members by TLS only, and without it a local process that speaks Akka.Remote could
/// join the cluster as a member (host shards, receive runs, talk to the singleton). Across machines the run root is a
/// shared mount, so the same file works everywhere; or copy it and give --cluster-cert PATH.
/// </summary>
public static class ClusterCertificate
{
    public const string FileName = "cluster.pfx";

    /// <summary>The subject of a generated certificate (the pin is the thumbprint, not the name).</summary>
    public const string Subject = "CN=ect-sweep-cluster";

    /// <summary>How long a generated certificate is valid; afterwards delete RUN_ROOT/cluster.pfx while no node runs.</summary>
    public static readonly TimeSpan Validity = TimeSpan.FromDays(10 * 365);

    public static string PathIn(string runRoot) => Path.Combine(runRoot, FileName);

    /// <summary>RUN_ROOT/cluster.pfx for a client that was given RUN_ROOT/cluster.token: the file beside it.</summary>
    public static string BesideTokenFile(string tokenFile) => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(tokenFile))!, FileName);

    /// <summary>
    /// The path of RUN_ROOT/cluster.pfx, creating it first when missing (written to a 0600 temporary file and moved into
    /// place without overwriting, as <see cref="ClusterToken.EnsureIn"/>: two nodes starting at once on one run root
    /// end with the same certificate). Throws <see cref="IOException"/> naming the file and the fix when it cannot be
    /// written.
    /// </summary>
    public static string EnsureIn(string runRoot)
    {
        var path = PathIn(runRoot);
        if (File.Exists(path)) return path;
        var tmp = AtomicFile.TempPathFor(path); // unique per call (pid + GUID): racing creators never share a temporary file
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        try
        {
            var pfx = Generate();
            using (var f = new FileStream(tmp, options)) f.Write(pfx);
            AtomicFile.Commit(tmp, path, overwrite: false);
        }
        catch (IOException) when (File.Exists(path))
        {
            // Another node made it first: use theirs.
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cluster certificate file {path} cannot be written ({e.Message}): fix the permissions of the run root or free disk space.", e);
        }
        finally
        {
            try { File.Delete(tmp); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* best effort */ }
        }
        return path;
    }

    /// <summary>A fresh self-signed certificate with its key, as PKCS#12 bytes without a password.</summary>
    public static byte[] Generate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest(Subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var now = DateTimeOffset.UtcNow;
        using var cert = request.CreateSelfSigned(now.AddDays(-1), now.Add(Validity));
        return cert.Export(X509ContentType.Pkcs12);
    }

    /// <summary>
    /// The SHA-1 thumbprint of a certificate file (what a holder pins when no --tls-pin is given). Throws
    /// <see cref="ArgumentException"/> naming <paramref name="option"/>, the file and the fix when it is missing or unreadable.
    /// </summary>
    public static string Thumbprint(string path, string password, string option)
    {
        if (!File.Exists(path))
            throw new ArgumentException($"{option} {path}: file not found: the first `ect node` of a run root writes RUN_ROOT/{FileName} beside " +
                                        $"{ClusterToken.FileName}; give that file (--cluster-cert PATH), or --insecure-no-tls if the nodes run without TLS (loopback only).");
        try
        {
            using var cert = Control.ControlEndpoint.LoadCertificate(Path.GetFullPath(path), password);
            if (!cert.HasPrivateKey)
                throw new ArgumentException($"{option} {path}: the certificate has no private key: give the PKCS#12 (.pfx) file with its key (the nodes' RUN_ROOT/{FileName}).");
            return cert.Thumbprint;
        }
        catch (Control.ControlException e)
        {
            throw new ArgumentException($"{option} {path}: {e.Message} (the nodes' certificate is RUN_ROOT/{FileName}, written by the first `ect node`; " +
                                        "or give --insecure-no-tls if the nodes run without TLS, on loopback only).", e);
        }
    }
}
