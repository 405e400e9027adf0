using System.Security.Cryptography;
using System.Text;
using Akka.Actor;
using Akka.Event;

namespace Ect.Actors.Control;

/// <summary>
/// The daemon's remote front door, at /user/control (the only path in akka.remote.trusted-selection-paths).
/// It checks the token of each <see cref="ControlRequest"/> in constant time; a command with the right token
/// is asked of the coordinator and the coordinator's <see cref="RunCommandReply"/> goes back to the caller;
/// a wrong token gets a refusal and never reaches the coordinator.
/// </summary>
public sealed class ControlActor : ReceiveActor
{
    /// <summary>The actor name; the daemon creates it at /user/control.</summary>
    public const string Name = "control";
    public const string Path = "/user/" + Name;

    public const string RefusedMessage = "refused: the control token does not match this run's token file";

    private readonly byte[] _token;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public ControlActor(IActorRef coordinator, string token, TimeSpan coordinatorTimeout)
    {
        if (string.IsNullOrEmpty(token)) throw new ArgumentException("The control token may not be empty.", nameof(token));
        _token = Encoding.UTF8.GetBytes(token);

        Receive<ControlRequest>(request =>
        {
            var key = request.Command?.IdempotencyKey ?? "";
            if (!TokenMatches(request.Token) || request.Command is null)
            {
                _log.Warning("Refused a control command from {0}: bad token", Sender.Path.Address);
                Sender.Tell(new RunCommandReply(key, false, RefusedMessage, null));
                return;
            }
            // Ask + pipe (rather than Forward) so that a coordinator that does not answer still gets the
            // caller a reply naming the problem, instead of the caller's own timeout.
            coordinator.Ask<RunCommandReply>(request.Command, coordinatorTimeout)
                .ContinueWith(t => t.IsCompletedSuccessfully
                    ? t.Result
                    : new RunCommandReply(key, false,
                        $"the run coordinator did not answer within {coordinatorTimeout.TotalSeconds:0.#} s"
                        + (t.Exception?.GetBaseException() is { } e and not AskTimeoutException ? $": {e.Message}" : ""),
                        null), TaskScheduler.Default)
                .PipeTo(Sender);
        });
        // Anything else that reaches the control actor (a bare command, a reply, whatever the wire could carry) is
        // dropped: only a ControlRequest with the token is acted on.
        ReceiveAny(m => _log.Warning("Dropped a {0} from {1}: the control endpoint accepts only control requests",
            m.GetType().Name, Sender.Path));
    }

    private bool TokenMatches(string? presented)
    {
        var bytes = Encoding.UTF8.GetBytes(presented ?? "");
        // FixedTimeEquals returns early only on a length mismatch, which reveals the length (public: 64 hex chars).
        return CryptographicOperations.FixedTimeEquals(bytes, _token);
    }

    public static Props Props(IActorRef coordinator, string token) => Props(coordinator, token, TimeSpan.FromSeconds(10));

    public static Props Props(IActorRef coordinator, string token, TimeSpan coordinatorTimeout)
    {
        // Checked here too, so that the mistake surfaces at the caller rather than as a failed actor start.
        if (string.IsNullOrEmpty(token)) throw new ArgumentException("The control token may not be empty.", nameof(token));
        return Akka.Actor.Props.Create(() => new ControlActor(coordinator, token, coordinatorTimeout));
    }
}
