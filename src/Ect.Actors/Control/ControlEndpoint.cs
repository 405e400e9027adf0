using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Remote.Transport.DotNetty;
using Ect.Compute.IO;

namespace Ect.Actors.Control;

/// <summary>
/// Daemon side of remote control: the akka.remote configuration, the TLS setup, the token file, and the
/// start-up of /user/control plus RUN_DIR/control.json.
///
/// Use (in the daemon):
/// <code>
/// var hocon = ControlEndpoint.Configure(config, runDir).WithFallback(config);
/// var setup = ControlEndpoint.CreateSetup(config, hocon);        // BootstrapSetup + TLS pinning when enabled
/// var system = ActorSystem.Create("ect", setup);
/// ControlEndpoint.Start(system, coordinator, config, runDir);   // /user/control + control.json
/// </code>
/// </summary>
public static class ControlEndpoint
{
    public const string NonLoopbackWithoutTlsError =
        "binding to another address requires mutual TLS with pinned certificate thumbprints";

    /// <summary>The name of the control endpoint's ActorSystem (what control.json and `ect ctl --system` name).</summary>
    public const string SystemName = "ect";

    // Every serializer Akka and Akka.Remote register by default, by name. Each is rebound to WireRefusingSerializer,
    // so its wire id is unknown here: Newtonsoft JSON would build any CLR type a peer names (the run's internal
    // messages), "proto" any protobuf message by type name (the journal's events), and the rest are Akka's own
    // messages (PoisonPill, Identify, watch, remote deployment) that the control protocol does not use.
    private static readonly string[] DefaultSerializerNames =
        ["json", "bytes", "hyperion", "akka-misc", "primitive", "proto", "daemon-create", "akka-system-msg"];

    /// <summary>
    /// Serialization of the control connection, on both ends (the daemon's control system and `ect ctl`'s): the
    /// control messages in protobuf (see control.proto) and the actor-selection envelope around a request, nothing
    /// else. Every default serializer is replaced by <see cref="WireRefusingSerializer"/>, so a message of any other
    /// type is refused on the way in (Akka.Remote logs and drops it) and on the way out.
    /// Included in <see cref="Configure"/> and in the client's configuration.
    /// </summary>
    public static Config SerializationConfig { get; } = ConfigurationFactory.ParseString($$"""
        akka.actor {
          serializers {
            {{string.Join("\n    ", DefaultSerializerNames.Select(n => $"{n} = \"Ect.Actors.Control.WireRefusingSerializer, ect\""))}}
            ect-control = "Ect.Actors.Control.ControlSerializer, ect"
          }
          serialization-bindings {
            "Ect.Actors.Control.ControlRequest, ect" = ect-control
            "Ect.Actors.Control.RunCommand, ect" = ect-control
            "Ect.Actors.Control.RunCommandReply, ect" = ect-control
          }
          serialization-identifiers {
            "Ect.Actors.Control.ControlSerializer, ect" = {{ControlSerializer.SerializerId}}
            "Ect.Actors.Control.WireRefusingSerializer, ect" = {{WireRefusingSerializer.SerializerId}}
          }
        }
        """);

    /// <summary>The serializer ids a control system reads off the wire: the control protocol and Akka's selection envelope.</summary>
    public static readonly IReadOnlySet<int> AcceptedSerializerIds = new HashSet<int> { ControlSerializer.SerializerId, SelectionEnvelopeSerializerId };

    /// <summary>Akka.Remote's MessageContainerSerializer (ActorSelectionMessage), the envelope `ect ctl`'s selection travels in.</summary>
    private const int SelectionEnvelopeSerializerId = 6;

    /// <summary>
    /// The HOCON fragment that turns on remoting for the control endpoint: dot-netty.tcp on ect.control's
    /// hostname/port, untrusted mode with only /user/control reachable by selection, and TLS when
    /// `ect.control.tls.enabled`. Throws <see cref="ControlException"/> when the hostname is not loopback and
    /// TLS (with at least one pinned thumbprint) is not enabled.
    /// </summary>
    /// <param name="ectConfig">The whole configuration (path ect.control) or its `ect` subtree (path control).</param>
    /// <param name="runDir">The run directory (the certificate path may be relative to it).</param>
    public static Config Configure(Config ectConfig, string runDir)
    {
        var s = ControlSettings.From(ectConfig);
        Validate(s, runDir);
        var tls = s.TlsEnabled
            ? $$"""
                enable-ssl = on
                ssl {
                  suppress-validation = off
                  certificate {
                    path = {{Quote(ResolvePath(s.CertificatePath, runDir))}}
                    password = {{Quote(s.CertificatePassword)}}
                    flags = [ "exportable" ]
                  }
                }
              """
            : "enable-ssl = off";
        var remote = ConfigurationFactory.ParseString($$"""
            akka.actor.provider = remote
            akka.remote {
              # Only /user/control is reachable by actor selection from outside; remote deployment, system
              # messages (watch, terminate) and selections of other paths are dropped.
              untrusted-mode = on
              trusted-selection-paths = [ {{Quote(ControlActor.Path)}} ]
              log-remote-lifecycle-events = off
              dot-netty.tcp {
                hostname = {{Quote(s.Hostname)}}
                port = {{s.Port}}
                {{tls}}
              }
            }
            """);
        return remote.WithFallback(SerializationConfig);
    }

    /// <summary>
    /// The ActorSystemSetup for the daemon: <paramref name="fullConfig"/> as bootstrap config, plus, when TLS is
    /// enabled, a <see cref="DotNettySslSetup"/> that requires mutual TLS and accepts only peers whose
    /// certificate thumbprint is pinned in ect.control.tls.pinned-thumbprints (HOCON alone cannot pin).
    /// </summary>
    public static ActorSystemSetup CreateSetup(Config ectConfig, Config fullConfig, string runDir)
    {
        var bootstrap = BootstrapSetup.Create().WithConfig(fullConfig);
        var s = ControlSettings.From(ectConfig);
        if (!s.TlsEnabled) return ActorSystemSetup.Create(bootstrap);
        Validate(s, runDir);
        var cert = LoadCertificate(ResolvePath(s.CertificatePath, runDir), s.CertificatePassword);
        return ActorSystemSetup.Create(bootstrap, PinnedSslSetup(cert, s.PinnedThumbprints));
    }

    /// <summary>Mutual TLS that accepts only the pinned thumbprints (used by the daemon and by `ect ctl`).</summary>
    public static DotNettySslSetup PinnedSslSetup(X509Certificate2 certificate, IReadOnlyList<string> pinnedThumbprints)
    {
        if (pinnedThumbprints.Count == 0)
            throw new ControlException("TLS needs at least one pinned certificate thumbprint (ect.control.tls.pinned-thumbprints).");
        return new DotNettySslSetup(certificate, false, true,
            CertificateValidation.PinnedCertificate(pinnedThumbprints.Select(ControlSettings.NormalizeThumbprint).ToArray()));
    }

    public static X509Certificate2 LoadCertificate(string path, string password)
    {
        if (!File.Exists(path))
            throw new ControlException($"TLS certificate '{path}' does not exist (ect.control.tls.certificate-path): give a PKCS#12 (.pfx) file with its private key.");
        try
        {
            return X509CertificateLoader.LoadPkcs12FromFile(path, string.IsNullOrEmpty(password) ? null : password,
                X509KeyStorageFlags.Exportable);
        }
        catch (CryptographicException e)
        {
            throw new ControlException($"TLS certificate '{path}' could not be read ({e.Message}): check the file and ect.control.tls.certificate-password.", e);
        }
    }

    /// <summary>
    /// Reads the run's control token, creating it first (32 random bytes, hex, file mode 0600) when missing, or
    /// when an earlier start left it empty or corrupt (a full disk used to leave an empty file that refused every
    /// later start). Written to a temporary file, flushed to disk and renamed: the token file is whole or absent.
    /// </summary>
    public static string EnsureToken(Config ectConfig, string runDir)
    {
        var path = ResolvePath(ControlSettings.From(ectConfig).TokenFile, runDir);
        if (File.Exists(path))
        {
            var text = SafeRead(path);
            // Unreadable: ReadToken says why. Empty or torn: replaced below.
            if (text is null || IsUsableToken(text)) return ReadToken(path);
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var tmp = $"{path}.{Environment.ProcessId}.tmp";
        // Create with 0600 from the start (no window where the secret is world-readable).
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        try
        {
            using (var f = new FileStream(tmp, options)) f.Write(System.Text.Encoding.ASCII.GetBytes(token));
            AtomicFile.Commit(tmp, path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch { /* best effort */ }
            throw new ControlException($"Control token file '{path}' cannot be written: {Run.IoError.Describe(e, tmp)}. " +
                "Free disk space or fix the permissions of the run directory, then start again.", e);
        }
        return ReadToken(path);
    }

    /// <summary>A token as the daemon writes one or a user may: non-empty printable ASCII (no NULs from a torn write).</summary>
    private static bool IsUsableToken(string? text)
    {
        var t = text?.Trim();
        return !string.IsNullOrEmpty(t) && t.All(c => c is >= ' ' and <= '~');
    }

    private static string? SafeRead(string path)
    {
        try { return File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>Reads a token file (what `ect ctl --token-file` uses).</summary>
    public static string ReadToken(string path)
    {
        if (!File.Exists(path))
            throw new ControlException($"Control token file '{path}' does not exist: the daemon creates it in its run directory (ect.control.token-file).");
        var token = File.ReadAllText(path).Trim();
        if (token.Length == 0)
            throw new ControlException($"Control token file '{path}' is empty: delete it and restart the daemon to create a new one.");
        return token;
    }

    /// <summary>
    /// Starts /user/control in front of <paramref name="coordinator"/> and writes RUN_DIR/control.json with
    /// the address remoting actually bound (port 0 becomes the real port). Returns the control actor.
    /// </summary>
    public static IActorRef Start(ActorSystem system, IActorRef coordinator, Config ectConfig, string runDir)
    {
        var token = EnsureToken(ectConfig, runDir);
        var control = system.ActorOf(ControlActor.Props(coordinator, token), ControlActor.Name);
        ControlAddressFile.Write(runDir, AddressOf(system));
        return control;
    }

    /// <summary>The bound address of a remoting ActorSystem, as written to control.json.</summary>
    public static ControlAddress AddressOf(ActorSystem system)
    {
        var a = ((ExtendedActorSystem)system).Provider.DefaultAddress;
        if (a.Host is null || a.Port is null)
            throw new ControlException("The ActorSystem has no remote address: configure it with ControlEndpoint.Configure.");
        return new ControlAddress(a.Protocol, a.System, a.Host, a.Port.Value, ControlActor.Path);
    }

    public static bool IsLoopback(string hostname) =>
        string.Equals(hostname, "localhost", StringComparison.OrdinalIgnoreCase)
        || (IPAddress.TryParse(hostname.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    private static void Validate(ControlSettings s, string runDir)
    {
        if (s.Port is < 0 or > 65535)
            throw new ControlException($"ect.control.port = {s.Port} is not a TCP port (0-65535; 0 picks a free one).");
        if (!IsLoopback(s.Hostname) && !(s.TlsEnabled && s.PinnedThumbprints.Count > 0))
            throw new ControlException(
                $"ect.control.hostname = \"{s.Hostname}\": {NonLoopbackWithoutTlsError}. Either keep hostname = \"127.0.0.1\" " +
                "or set ect.control.tls { enabled = on, certificate-path = \"...pfx\", pinned-thumbprints = [\"...\"] }.");
        if (s.TlsEnabled && string.IsNullOrWhiteSpace(s.CertificatePath))
            throw new ControlException("ect.control.tls.enabled = on but ect.control.tls.certificate-path is empty: give a PKCS#12 (.pfx) file.");
        if (s.TlsEnabled && s.PinnedThumbprints.Count == 0)
            throw new ControlException("ect.control.tls.enabled = on but ect.control.tls.pinned-thumbprints is empty: pin the peers' certificate thumbprints.");
    }

    private static string ResolvePath(string path, string runDir) =>
        Path.IsPathRooted(path) ? path : Path.Combine(runDir, path);

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}
