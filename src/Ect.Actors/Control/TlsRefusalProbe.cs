using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Ect.Actors.Control;

/// <summary>
/// Tells whether a TLS daemon refuses our client certificate, by a handshake of our own. Akka.Remote does not say it
/// reliably: under TLS 1.3 the server checks the client's certificate after the client has finished its side of the
/// handshake, so the client's association sees a closed connection, and in 2 of 3 loaded test runs no
/// AssociationErrorEvent was published at all (`ect ctl` then said "No answer"). Here the client handshakes with the
/// same certificate and pins, then reads: a daemon that refused us sends an alert or closes; one that accepted us
/// waits for our first message (Akka.Remote's client speaks first), so the read times out.
/// </summary>
internal static class TlsRefusalProbe
{
    /// <summary>Why the daemon refused our certificate, or null when it did not (or the probe cannot tell).</summary>
    public static async Task<string?> RefusalAsync(string host, int port, X509Certificate2 certificate,
        IReadOnlyCollection<string> pinnedThumbprints, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        using var tcp = new TcpClient();
        try { await tcp.ConnectAsync(host, port, deadline.Token); }
        catch (Exception e) when (e is SocketException or OperationCanceledException) { return null; }
        await using var ssl = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false);
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = host,
            ClientCertificates = new X509CertificateCollection { certificate },
            // Only the pinned daemon is talked to (as the client's Akka.Remote does).
            RemoteCertificateValidationCallback = (_, cert, _, _) =>
                cert is not null && pinnedThumbprints.Contains(ControlSettings.NormalizeThumbprint(new X509Certificate2(cert).Thumbprint)),
        };
        try { await ssl.AuthenticateAsClientAsync(options, deadline.Token); }
        catch (OperationCanceledException) { return null; }
        catch (AuthenticationException e) when (IsOurValidation(e)) { return null; } // the daemon is not pinned: said elsewhere
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
            return $"the daemon ended the handshake ({Innermost(e)})";
        }
        var buffer = new byte[1];
        try
        {
            var n = await ssl.ReadAsync(buffer, deadline.Token);
            return n == 0 ? "the daemon closed the connection as soon as it saw our certificate" : null;
        }
        catch (OperationCanceledException) { return null; } // accepted: it waits for us to speak
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
            return $"the daemon refused the connection after the handshake ({Innermost(e)})";
        }
    }

    // SslStream's own "remote certificate is invalid according to the validation procedure" when our pin check said no.
    private static bool IsOurValidation(AuthenticationException e) =>
        e.Message.Contains("RemoteCertificateValidationCallback", StringComparison.Ordinal) ||
        e.Message.Contains("validation procedure", StringComparison.Ordinal);

    private static string Innermost(Exception e)
    {
        var messages = new List<string>();
        for (var x = e; x != null; x = x.InnerException) messages.Add(x.Message.TrimEnd('.'));
        return string.Join(": ", messages.Distinct());
    }
}
