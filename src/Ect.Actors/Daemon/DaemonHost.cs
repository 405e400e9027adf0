using System.Runtime.ExceptionServices;
using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using Ect.Actors.Control;
using Ect.Actors.Run;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Ect.Actors.Daemon;

/// <summary>
/// The daemon's Microsoft.Extensions.Hosting host with Akka.Hosting's actor system "ect-run": the system HOCON
/// (<see cref="RunDaemon.SystemConfig"/>: dispatchers, serializers, journal; no remoting), and the run's actors,
/// started by WithActors and kept in the ActorRegistry (<see cref="RunCoordinator"/> as /user/run, and the
/// <see cref="ControlActor"/> of the network-facing <see cref="ControlSystem"/> (<see cref="ControlHook"/>),
/// a separate ActorSystem "ect" whose only actor is /user/control).
///
/// The host has no console lifetime. `ect train` handles SIGTERM/SIGINT itself (TrainVerb): the signal must
/// reach the coordinator (final checkpoint, RunInterrupted journaled, exit 0) before the actor system stops.
/// HostBuilder registers a ConsoleLifetime by default, which would stop the host, and with it the actor
/// system (CoordinatedShutdown), on those same signals; <see cref="DaemonLifetime"/> replaces it.
/// </summary>
internal sealed class DaemonHost : IDisposable
{
    /// <summary>The run's ActorSystem (local only; the control endpoint's system is <see cref="ControlEndpoint.SystemName"/>).</summary>
    public const string SystemName = "ect-run";

    private readonly IHost _host;
    private ExceptionDispatchInfo? _startFailure;
    private bool _started;
    private ControlSystem? _control;

    public DaemonHost(Config ect, string runDir, Props coordinator)
    {
        _host = new HostBuilder()
            .ConfigureServices(services =>
            {
                services.AddAkka(SystemName, builder => builder
                    .AddHocon(RunDaemon.SystemConfig(ect, runDir), HoconAddMode.Append)
                    .WithActors((system, registry) =>
                    {
                        // Akka.Hosting logs a failure here (with a stack trace on stdout) and rethrows; keep it
                        // and rethrow from StartAsync instead, so the user sees our message as before.
                        try
                        {
                            var run = system.ActorOf(coordinator, "run");
                            registry.Register<RunCoordinator>(run);
                            _control = ControlHook.Start(run, ect, runDir);
                            if (_control is not null) registry.Register<ControlActor>(_control.Actor);
                        }
                        catch (Exception e)
                        {
                            _startFailure = ExceptionDispatchInfo.Capture(e);
                        }
                    }));
                // After HostBuilder's own registration of ConsoleLifetime: the last registration wins.
                services.AddSingleton<IHostLifetime, DaemonLifetime>();
            })
            .Build();
    }

    public IServiceProvider Services => _host.Services;

    /// <summary>
    /// Creates the actor system (configuration errors surface here, as from ActorSystem.Create), starts the
    /// host (the actors), and returns the system and the coordinator.
    /// </summary>
    public async Task<(ActorSystem System, IActorRef Coordinator)> StartAsync()
    {
        var system = _host.Services.GetRequiredService<ActorSystem>();
        _started = true;
        await _host.StartAsync();
        _startFailure?.Throw();
        var coordinator = ActorRegistry.For(system).Get<RunCoordinator>();
        return (system, coordinator);
    }

    /// <summary>Stops the control endpoint (no command arrives during the shutdown), then the host: CoordinatedShutdown,
    /// which terminates the run's actor system.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        if (_control is { } control)
        {
            _control = null;
            await control.StopAsync(timeout);
        }
        if (!_started) return;
        using var cts = new CancellationTokenSource(timeout);
        await _host.StopAsync(cts.Token).WaitAsync(timeout).ContinueWith(_ => { });
    }

    /// <summary>
    /// Stops the control system, then disposes the host, each waiting at most a few seconds: after a stop that timed
    /// out (a step that never returns) the actor system cannot terminate, and its disposal would hold `ect train` past
    /// the bounded stop.
    /// </summary>
    public void Dispose()
    {
        try { _control?.StopAsync(TimeSpan.FromSeconds(3)).Wait(TimeSpan.FromSeconds(3)); }
        catch (AggregateException) { /* shutting down anyway */ }
        var disposing = Task.Run(_host.Dispose);
        try { disposing.Wait(TimeSpan.FromSeconds(3)); }
        catch (AggregateException) { /* shutting down anyway */ }
    }

    /// <summary>A lifetime that neither waits for nor listens to anything: the daemon decides when it stops.</summary>
    internal sealed class DaemonLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
