using System.CommandLine;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Ect.Actors.Control;

namespace Ect.Actors.Cluster;

/// <summary>
/// Mutual TLS with pinned certificate thumbprints on the cluster's transport (nodes and the `ect sweep` / `ect ctl
/// --cluster` clients), the control endpoint's certificate handling reused (<see cref="ControlEndpoint.PinnedSslSetup"/>):
/// every node and client holds the cluster's certificate (a PKCS#12 file) and accepts only peers whose thumbprint is
/// pinned, so a process without it can neither join nor send. On by default, even on loopback: a node uses
/// RUN_ROOT/cluster.pfx (<see cref="ClusterCertificate"/>, made by the first node), a client the cluster.pfx beside its
/// --token-file; --cluster-cert (alias --tls-certificate) gives another file, --tls-pin other thumbprints (default: the
/// certificate's own). <see cref="Insecure"/> (--insecure-no-tls) turns TLS off, on loopback only: any local process
/// that speaks Akka.Remote can then join the cluster as a member.
/// </summary>
public sealed record ClusterTls(string? CertificatePath, string Password, IReadOnlyList<string> Pins, bool Insecure = false)
{
    /// <summary>TLS is on once a certificate is set (by the options or by <see cref="ForNode"/> / <see cref="ForClient"/>).</summary>
    public bool Enabled => CertificatePath is { Length: > 0 };

    public sealed record Parsed(Option<string> Certificate, Option<string> Password, Option<string> Pin, Option<bool> NoTls)
    {
        public IEnumerable<Option> All => [Certificate, Password, Pin, NoTls];
        public ClusterTls From(ParseResult r) => new(r.GetValue(Certificate), r.GetValue(Password) ?? "",
            (r.GetValue(Pin) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), r.GetValue(NoTls));
    }

    public const string InsecureOption = "--insecure-no-tls";

    /// <summary>The --insecure-no-tls switch (shared with `ect ctl`).</summary>
    public static Option<bool> InsecureSwitch() =>
        new(InsecureOption) { Description = "UNSAFE: cluster traffic without TLS (loopback only): any local process that speaks Akka.Remote can then join the cluster as a member. All nodes and clients must agree." };

    /// <summary>--cluster-cert PFX (alias --tls-certificate), --tls-password P, --tls-pin THUMBPRINT[,THUMBPRINT...], --insecure-no-tls.</summary>
    public static Parsed Options()
    {
        var certificate = new Option<string>("--cluster-cert", "--tls-certificate")
        {
            Description = $"The cluster's certificate (PKCS#12 .pfx with its key). Default: RUN_ROOT/{ClusterCertificate.FileName} (a node; made by the first node), " +
                          $"or the {ClusterCertificate.FileName} beside --token-file (a client)."
        };
        return new(certificate,
            new Option<string>("--tls-password") { Description = "The certificate file's password (default none)." },
            new Option<string>("--tls-pin") { Description = "SHA-1 thumbprint(s) of the certificates a peer may present, comma-separated (default: the certificate's own)." },
            InsecureSwitch());
    }

    /// <summary>
    /// Refuses what no run root can fix, before anything starts: --insecure-no-tls beside a certificate, or on an address
    /// beyond loopback. Throws ArgumentException naming the option, the value and the fix.
    /// </summary>
    public void CheckAddress(string hostname)
    {
        if (!Insecure) return;
        if (Enabled) throw new ArgumentException($"{InsecureOption} with --cluster-cert {CertificatePath}: choose one (TLS is on by default; {InsecureOption} turns it off).");
        if (!ControlEndpoint.IsLoopback(hostname))
            throw new ArgumentException($"--hostname {hostname} with {InsecureOption}: cluster traffic beyond loopback needs mutual TLS: drop {InsecureOption} " +
                                        $"(the nodes then use RUN_ROOT/{ClusterCertificate.FileName}) or give --tls-certificate FILE.pfx.");
    }

    /// <summary>A node's TLS: the given certificate, else RUN_ROOT/cluster.pfx (made when missing); pins default to its thumbprint.</summary>
    public ClusterTls ForNode(string runRoot) => Resolve(() => ClusterCertificate.EnsureIn(runRoot));

    /// <summary>A client's TLS: the given certificate, else the cluster.pfx beside <paramref name="tokenFile"/>; pins default to its thumbprint.</summary>
    public ClusterTls ForClient(string tokenFile) => Resolve(() => ClusterCertificate.BesideTokenFile(tokenFile));

    private ClusterTls Resolve(Func<string> defaultPath)
    {
        if (Insecure)
        {
            if (Enabled) throw new ArgumentException($"{InsecureOption} with --cluster-cert {CertificatePath}: choose one.");
            return this;
        }
        var path = Path.GetFullPath(Enabled ? CertificatePath! : defaultPath());
        var thumbprint = ClusterCertificate.Thumbprint(path, Password, "--cluster-cert");
        return this with { CertificatePath = path, Pins = Pins.Count > 0 ? Pins : [thumbprint] };
    }

    /// <summary>The dot-netty.tcp TLS lines; throws ArgumentException when a non-loopback <paramref name="hostname"/> has no TLS or TLS has no pin.</summary>
    public string Hocon(string hostname)
    {
        if (!Enabled)
        {
            if (!ControlEndpoint.IsLoopback(hostname))
                throw new ArgumentException($"--hostname {hostname}: cluster traffic beyond loopback needs mutual TLS: drop {InsecureOption} or give --tls-certificate FILE.pfx.");
            return "enable-ssl = off";
        }
        if (Pins.Count == 0) throw new ArgumentException("--tls-certificate without --tls-pin: pin the thumbprint(s) of the cluster's certificate(s).");
        if (!File.Exists(CertificatePath)) throw new ArgumentException($"--tls-certificate {CertificatePath}: file not found.");
        return $$"""
            enable-ssl = on
            ssl {
              suppress-validation = off
              certificate {
                path = {{Persistence.PersistenceHocon.Quote(Path.GetFullPath(CertificatePath!))}}
                password = {{Persistence.PersistenceHocon.Quote(Password)}}
                flags = [ "exportable" ]
              }
            }
            """;
    }

    /// <summary>The ActorSystemSetup: <paramref name="config"/>, plus the pinned mutual TLS when enabled.</summary>
    public ActorSystemSetup Setup(Config config)
    {
        var bootstrap = BootstrapSetup.Create().WithConfig(config);
        if (!Enabled) return ActorSystemSetup.Create(bootstrap);
        try { return ActorSystemSetup.Create(bootstrap, ControlEndpoint.PinnedSslSetup(ControlEndpoint.LoadCertificate(Path.GetFullPath(CertificatePath!), Password), Pins)); }
        catch (ControlException e) { throw new ArgumentException($"--tls-certificate: {e.Message}", e); }
    }
}
