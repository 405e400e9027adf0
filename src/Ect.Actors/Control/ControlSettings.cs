using Akka.Configuration;

namespace Ect.Actors.Control;

/// <summary>The `ect.control` section: where the control endpoint listens, the token file, TLS.</summary>
public sealed record ControlSettings(
    string Hostname,
    int Port,
    string TokenFile,
    bool TlsEnabled,
    string CertificatePath,
    string CertificatePassword,
    IReadOnlyList<string> PinnedThumbprints)
{
    public static ControlSettings Default { get; } = new("127.0.0.1", 0, "control.token", false, "", "", []);

    /// <summary>
    /// Reads the control section from either the whole configuration (path `ect.control`) or the `ect`
    /// subtree (path `control`); a missing section or key takes the default (loopback, port 0, no TLS).
    /// </summary>
    public static ControlSettings From(Config config)
    {
        var c = config.HasPath("ect.control") ? config.GetConfig("ect.control")
            : config.HasPath("control") ? config.GetConfig("control")
            : null;
        if (c is null || c.IsEmpty) return Default;
        var d = Default;
        var pins = c.HasPath("tls.pinned-thumbprints") ? c.GetStringList("tls.pinned-thumbprints") : [];
        return new ControlSettings(
            c.GetString("hostname", d.Hostname),
            c.GetInt("port", d.Port),
            c.GetString("token-file", d.TokenFile),
            c.GetBoolean("tls.enabled", d.TlsEnabled),
            c.GetString("tls.certificate-path", d.CertificatePath) ?? "",
            c.GetString("tls.certificate-password", d.CertificatePassword) ?? "",
            pins.Where(p => !string.IsNullOrWhiteSpace(p)).Select(NormalizeThumbprint).ToArray());
    }

    /// <summary>Thumbprints as .NET prints them: upper-case hex without separators.</summary>
    public static string NormalizeThumbprint(string t) =>
        new string(t.Where(Uri.IsHexDigit).ToArray()).ToUpperInvariant();
}
