using System.Security.Cryptography.X509Certificates;
using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;

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

    public ControlAddress Address { get; }
    public TimeSpan AskTimeout { get; }
    public int Attempts { get; }

    private ControlClient(ActorSystem system, ControlAddress address, string token, TimeSpan askTimeout, int attempts)
    {
        _system = system;
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
        var setup = ssl
            ? ActorSystemSetup.Create(bootstrap, ControlEndpoint.PinnedSslSetup(tls!.Certificate, tls.PinnedThumbprints))
            : ActorSystemSetup.Create(bootstrap);
        var system = ActorSystem.Create("ect-ctl", setup);
        return new ControlClient(system, address, token, askTimeout ?? TimeSpan.FromSeconds(10), attempts);
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
        throw new ControlException(
            $"No answer from {Address.SelectionPath} after {Attempts} attempt(s) of {AskTimeout.TotalSeconds:0.#} s: " +
            "is the daemon running (`ect train`), and are the address and port right?");
    }

    public async ValueTask DisposeAsync() => await _system.Terminate();
}
