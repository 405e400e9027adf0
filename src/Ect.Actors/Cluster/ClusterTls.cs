using System.CommandLine;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Ect.Actors.Control;

namespace Ect.Actors.Cluster;

/// <summary>
/// Mutual TLS with pinned certificate thumbprints on the cluster's transport (nodes and the `ect sweep` client), the
/// control endpoint's certificate handling reused (<see cref="ControlEndpoint.PinnedSslSetup"/>): every node and
/// client holds the cluster's certificate (a PKCS#12 file) and accepts only peers whose thumbprint is pinned, so a
/// process without it can neither join nor send. Off on loopback by default; binding another address without it is
/// refused.
/// </summary>
public sealed record ClusterTls(string? CertificatePath, string Password, IReadOnlyList<string> Pins)
{
    public bool Enabled => CertificatePath is { Length: > 0 };

    public sealed record Parsed(Option<string> Certificate, Option<string> Password, Option<string> Pin)
    {
        public IEnumerable<Option> All => [Certificate, Password, Pin];
        public ClusterTls From(ParseResult r) => new(r.GetValue(Certificate), r.GetValue(Password) ?? "",
            (r.GetValue(Pin) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    /// <summary>--tls-certificate PFX, --tls-password P, --tls-pin THUMBPRINT[,THUMBPRINT...].</summary>
    public static Parsed Options() => new(
        new Option<string>("--tls-certificate") { Description = "The cluster's certificate (PKCS#12 .pfx with its key): turns on mutual TLS between nodes and clients." },
        new Option<string>("--tls-password") { Description = "The certificate file's password (default none)." },
        new Option<string>("--tls-pin") { Description = "SHA-1 thumbprint(s) of the certificates a peer may present, comma-separated (required with --tls-certificate)." });

    /// <summary>The dot-netty.tcp TLS lines; throws ArgumentException when a non-loopback <paramref name="hostname"/> has no TLS or TLS has no pin.</summary>
    public string Hocon(string hostname)
    {
        if (!Enabled)
        {
            if (!ControlEndpoint.IsLoopback(hostname))
                throw new ArgumentException($"--hostname {hostname}: cluster traffic beyond loopback needs mutual TLS: give --tls-certificate FILE.pfx and --tls-pin THUMBPRINT.");
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
