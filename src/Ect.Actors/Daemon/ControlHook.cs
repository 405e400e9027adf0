using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using Akka.Remote.Transport.DotNetty;
using Ect.Actors.Control;

namespace Ect.Actors.Daemon;

/// <summary>Wires the remote control endpoint (Ect.Actors.Control) into the daemon's actor system.</summary>
public static class ControlHook
{
    public static bool Enabled(Config ect) => ect.GetBoolean("ect.control.enabled", true);

    /// <summary>
    /// Remoting for the control endpoint when control is enabled: its HOCON in front of the system's (as
    /// ControlEndpoint.Configure(...).WithFallback(system) did), and the TLS pinning setup that HOCON cannot express.
    /// </summary>
    public static AkkaConfigurationBuilder AddControlRemoting(this AkkaConfigurationBuilder builder, Config ect, string runDir)
    {
        if (!Enabled(ect)) return builder;
        var remote = ControlEndpoint.Configure(ect, runDir);
        builder.AddHocon(remote, HoconAddMode.Prepend);
        // CreateSetup validates and loads the certificate; only its DotNettySslSetup is used (the bootstrap
        // config comes from the builder's HOCON).
        var ssl = ControlEndpoint.CreateSetup(ect, remote, runDir).Get<DotNettySslSetup>();
        if (ssl.HasValue) builder.AddSetup(ssl.Value);
        return builder;
    }

    /// <summary>Starts /user/control in front of the coordinator and writes RUN_DIR/control.json.</summary>
    public static IActorRef? Start(ActorSystem system, IActorRef coordinator, Config ect, string runDir) =>
        Enabled(ect) ? ControlEndpoint.Start(system, coordinator, ect, runDir) : null;
}
