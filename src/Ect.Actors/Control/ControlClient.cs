using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Remote;
using Akka.Remote.Transport.DotNetty;

namespace Ect.Actors.Control;

/// <summary>Client-side mutual TLS: our certificate (with private key) and the daemon thumbprints we accept.</summary>
public sealed record ControlClientTls(X509Certificate2 Certificate, IReadOnlyList<string> PinnedThumbprints);

/// <summary>
/// `ect ctl`'s side of remote control: a small client ActorSystem on loopback port 0 that sends
/// <see cref="ControlRequest"/>s to the daemon's /user/control by actor selection and waits for the reply.
/// A command that gets no answer in time is re-sent unchanged, so it carries the same idempotency key on every
/// attempt and the coordinator applies it at most once.
/// </summary>
public sealed class ControlClient : IAsyncDisposable
{
    private readonly ActorSystem _system;
    private readonly ActorSelection _control;
    private readonly string _token;
    private readonly ConnectionTrouble _trouble;
    private readonly ControlClientTls? _tls;

    public ControlAddress Address { get; }
    public TimeSpan AskTimeout { get; }
    public int Attempts { get; }

    private ControlClient(ActorSystem system, ControlAddress address, string token, TimeSpan askTimeout, int attempts,
        ConnectionTrouble trouble, ControlClientTls? tls)
    {
        _system = system;
        _trouble = trouble;
        _tls = tls;
        Address = address;
        _token = token;
        AskTimeout = askTimeout;
        Attempts = attempts;
        _control = system.ActorSelection(address.SelectionPath);
    }

    /// <summary>Starts the client ActorSystem (loopback, port 0) for talking to <paramref name="address"/>.</summary>
    public static ControlClient Create(ControlAddress address, string token, TimeSpan? askTimeout = null, int attempts = 3,
        ControlClientTls? tls = null)
    {
        if (attempts < 1) throw new ArgumentOutOfRangeException(nameof(attempts), attempts, "at least one attempt");
        var ssl = address.Protocol == "akka.ssl.tcp";
        if (ssl && tls is null)
            throw new ControlException($"The daemon at {address.SelectionPath} uses TLS: give --tls-certificate (our .pfx) and --tls-pin (the daemon's thumbprint).");
        var config = ConfigurationFactory.ParseString($$"""
            akka {
              loglevel = ERROR
              stdout-loglevel = ERROR
              actor.provider = remote
              remote {
                log-remote-lifecycle-events = off
                dot-netty.tcp {
                  hostname = "127.0.0.1"
                  port = 0
                  enable-ssl = {{(ssl ? "on" : "off")}}
                }
              }
            }
            """).WithFallback(ControlEndpoint.SerializationConfig);
        var bootstrap = BootstrapSetup.Create().WithConfig(config);
        var trouble = new ConnectionTrouble();
        var setup = ssl
            ? ActorSystemSetup.Create(bootstrap, ClientSslSetup(tls!, trouble))
            : ActorSystemSetup.Create(bootstrap);
        var system = ActorSystem.Create("ect-ctl", setup);
        var listener = ((ExtendedActorSystem)system).SystemActorOf(Props.Create(() => new AssociationErrorListener(trouble)), "ect-ctl-association-errors");
        system.EventStream.Subscribe(listener, typeof(AssociationErrorEvent));
        return new ControlClient(system, address, token, askTimeout ?? TimeSpan.FromSeconds(10), attempts, trouble, ssl ? tls : null);
    }

    /// <summary>
    /// Mutual TLS that accepts only the pinned daemon thumbprints (as <see cref="ControlEndpoint.PinnedSslSetup"/>) and
    /// remembers why it refused a daemon, so that the error says so instead of "no answer".
    /// </summary>
    private static DotNettySslSetup ClientSslSetup(ControlClientTls tls, ConnectionTrouble trouble)
    {
        if (tls.PinnedThumbprints.Count == 0)
            throw new ControlException("TLS needs at least one pinned daemon thumbprint (--tls-pin).");
        var pins = tls.PinnedThumbprints.Select(ControlSettings.NormalizeThumbprint).ToArray();
        var pinned = CertificateValidation.PinnedCertificate(pins);
        CertificateValidationCallback check = (certificate, chain, peer, errors, log) =>
        {
            if (pinned(certificate, chain, peer, errors, log)) return true;
            trouble.RejectedDaemon = certificate is null
                ? "the daemon presented no certificate"
                : $"the daemon's certificate ({certificate.Subject}, thumbprint {certificate.Thumbprint}) is not pinned (--tls-pin {string.Join(", ", pins)})";
            return false;
        };
        return new DotNettySslSetup(tls.Certificate, false, true, check);
    }

    /// <summary>What went wrong on the way to the daemon, seen from the client's side of the connection.</summary>
    private sealed class ConnectionTrouble
    {
        public volatile string? RejectedDaemon;
        public volatile Exception? AssociationError;
    }

    private sealed class AssociationErrorListener : ReceiveActor
    {
        public AssociationErrorListener(ConnectionTrouble trouble) =>
            Receive<AssociationErrorEvent>(e => trouble.AssociationError = e.Cause);
    }

    /// <summary>Why no attempt got an answer, as precisely as the client knows it.</summary>
    private async Task<string> NoAnswerAsync()
    {
        var where = $"{Address.Hostname}:{Address.Port}";
        if (_trouble.RejectedDaemon is { } rejected)
            return $"TLS with {where} failed: {rejected}. Pin the daemon's certificate thumbprint with --tls-pin, or check that " +
                   $"{Address.SelectionPath} is the daemon you mean.";
        if (_tls is { } tls)
        {
            // Akka.Remote reports a refused client certificate unreliably (see TlsRefusalProbe): ask the daemon directly.
            var refusal = _trouble.AssociationError is { } error ? $"the handshake did not complete ({Innermost(error)})"
                : await TlsRefusalProbe.RefusalAsync(Address.Hostname, Address.Port, tls.Certificate, tls.PinnedThumbprints, AskTimeout);
            if (refusal is not null)
                return $"TLS with {where} failed: {refusal}. The daemon refuses a client certificate " +
                       $"it has not pinned: is ours ({tls.Certificate.Subject}, thumbprint {tls.Certificate.Thumbprint}) in the daemon's " +
                       "ect.control.tls.pinned-thumbprints?";
        }
        var cause = _trouble.AssociationError is { } e ? $" (connection: {Innermost(e)})" : "";
        return $"No answer from {Address.SelectionPath} after {Attempts} attempt(s) of {AskTimeout.TotalSeconds:0.#} s{cause}: " +
               "is the daemon running (`ect train`), and are the address and port right?";
    }

    private static string Innermost(Exception e)
    {
        var messages = new List<string>();
        for (var x = e; x != null; x = x.InnerException) messages.Add(x.Message);
        return string.Join(": ", messages.Distinct());
    }

    /// <summary>
    /// Sends <paramref name="command"/> with the token and returns the reply (which may be a refusal,
    /// Accepted = false). Throws <see cref="ControlException"/> when no attempt got an answer.
    /// </summary>
    public async Task<RunCommandReply> SendAsync(RunCommand command, CancellationToken cancellationToken = default)
    {
        var request = new ControlRequest(_token, command);
        for (var attempt = 1; attempt <= Attempts; attempt++)
        {
            try
            {
                return await _control.Ask<RunCommandReply>(request, AskTimeout, cancellationToken);
            }
            catch (AskTimeoutException) when (attempt < Attempts)
            {
                // Same request object again: same idempotency key.
            }
            catch (AskTimeoutException)
            {
                break;
            }
        }
        throw new ControlException(await NoAnswerAsync());
    }

    public async ValueTask DisposeAsync() => await _system.Terminate();
}
