using Akka.Actor;
using Akka.Configuration;
using Akka.Event;

namespace Ect.Actors.Control;

/// <summary>
/// The daemon's network-facing ActorSystem: remoting on ect.control's address, /user/control and nothing else of
/// the run. The run's own ActorSystem (coordinator, trainer, checkpointer, evaluators, journal) has no remoting at
/// all; the control actor holds a reference to the coordinator and hands it, in-process, only the commands of
/// requests whose token matched. So a peer that reaches the port can address no actor of the run, whatever path or
/// message it sends, and the wire itself carries only the control protocol (<see cref="ControlEndpoint.SerializationConfig"/>).
/// What is dropped is logged: a refused serializer by Akka.Remote, a message to a path that does not exist here by
/// <see cref="InboundDropLogger"/>, anything but a ControlRequest by the control actor.
/// </summary>
public sealed class ControlSystem : IAsyncDisposable
{
    private ControlSystem(ActorSystem system, IActorRef actor)
    {
        System = system;
        Actor = actor;
    }

    public ActorSystem System { get; }

    /// <summary>/user/control.</summary>
    public IActorRef Actor { get; }

    /// <summary>The bound address (what control.json holds).</summary>
    public ControlAddress Address => ControlEndpoint.AddressOf(System);

    private static readonly Config BaseConfig = ConfigurationFactory.ParseString("""
        akka {
          loglevel = WARNING
          stdout-loglevel = WARNING
          # InboundDropLogger reports each dead letter (a message to a path with no actor) as a warning with the reason.
          log-dead-letters = off
          log-dead-letters-during-shutdown = off
          coordinated-shutdown.run-by-clr-shutdown-hook = off
          # As in the run's system (RunDaemon.SystemConfig): no 10 ms tick that would preempt the trainer's threads.
          scheduler.tick-duration = 100ms
        }
        """);

    /// <summary>
    /// Starts the control system for <paramref name="coordinator"/> (an actor of another, unexposed system), writes
    /// RUN_DIR/control.json and the token file. Throws <see cref="ControlException"/> on a bad ect.control section.
    /// </summary>
    public static ControlSystem Start(Config ect, string runDir, IActorRef coordinator)
    {
        var full = ControlEndpoint.Configure(ect, runDir).WithFallback(BaseConfig);
        var system = ActorSystem.Create(ControlEndpoint.SystemName, ControlEndpoint.CreateSetup(ect, full, runDir));
        try
        {
            var dropLogger = ((ExtendedActorSystem)system).SystemActorOf(Props.Create(() => new InboundDropLogger()), "ect-inbound-drops");
            system.EventStream.Subscribe(dropLogger, typeof(DeadLetter));
            system.EventStream.Subscribe(dropLogger, typeof(UnhandledMessage));
            return new ControlSystem(system, ControlEndpoint.Start(system, coordinator, ect, runDir));
        }
        catch
        {
            system.Terminate().Wait(TimeSpan.FromSeconds(10));
            throw;
        }
    }

    /// <summary>Stops listening (the run goes on until its own system stops).</summary>
    public async Task StopAsync(TimeSpan timeout) =>
        await System.Terminate().WaitAsync(timeout).ContinueWith(_ => { });

    public async ValueTask DisposeAsync() => await StopAsync(TimeSpan.FromSeconds(10));

    /// <summary>Logs every message the control system could not deliver or its recipient did not handle.</summary>
    internal sealed class InboundDropLogger : ReceiveActor
    {
        public InboundDropLogger()
        {
            var log = Context.GetLogger();
            Receive<DeadLetter>(d => log.Warning("Dropped a {0} from {1} to {2}: no such actor on the control endpoint (only {3} is)",
                d.Message?.GetType().Name ?? "null", d.Sender?.Path.ToString() ?? "?", d.Recipient?.Path.ToString() ?? "?", ControlActor.Path));
            Receive<UnhandledMessage>(u => log.Warning("Dropped a {0} from {1} to {2}: not a message it handles",
                u.Message?.GetType().Name ?? "null", u.Sender?.Path.ToString() ?? "?", u.Recipient?.Path.ToString() ?? "?"));
        }
    }
}
