using Akka.Actor;
using Akka.Configuration;
using Ect.Actors.Control;

namespace Ect.Actors.Daemon;

/// <summary>Wires the remote control endpoint (Ect.Actors.Control) to the daemon's run.</summary>
public static class ControlHook
{
    public static bool Enabled(Config ect) => ect.GetBoolean("ect.control.enabled", true);

    /// <summary>
    /// When control is enabled: the network-facing <see cref="ControlSystem"/> (its own ActorSystem, remoting on
    /// ect.control's address, TLS when configured) with /user/control in front of <paramref name="coordinator"/>,
    /// and RUN_DIR/control.json. The run's own system stays without remoting.
    /// </summary>
    public static ControlSystem? Start(IActorRef coordinator, Config ect, string runDir) =>
        Enabled(ect) ? ControlSystem.Start(ect, runDir, coordinator) : null;
}
