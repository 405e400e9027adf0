using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Ect.Actors.Control;

namespace Ect.Actors.Daemon;

/// <summary>Wires the remote control endpoint (Ect.Actors.Control) into the daemon's actor system.</summary>
public static class ControlHook
{
    public static bool Enabled(Config ect) => ect.GetBoolean("ect.control.enabled", true);

    /// <summary>The actor system setup: remoting (and TLS pinning) when control is enabled.</summary>
    public static ActorSystemSetup Setup(Config ect, Config systemConfig, string runDir)
    {
        if (!Enabled(ect)) return ActorSystemSetup.Create(BootstrapSetup.Create().WithConfig(systemConfig));
        var full = ControlEndpoint.Configure(ect, runDir).WithFallback(systemConfig);
        return ControlEndpoint.CreateSetup(ect, full, runDir);
    }

    /// <summary>Starts /user/control in front of the coordinator and writes RUN_DIR/control.json.</summary>
    public static void Start(ActorSystem system, IActorRef coordinator, Config ect, string runDir)
    {
        if (Enabled(ect)) ControlEndpoint.Start(system, coordinator, ect, runDir);
    }
}
