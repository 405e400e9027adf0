using System.Reactive.Concurrency;
using System.Reactive.Linq;
using System.Reactive.Subjects;
using Akka.Actor;
using Akka.Configuration;
using Ect.Actors.Configuration;
using Ect.Actors.Output;
using Ect.Actors.Persistence;
using Ect.Actors.Run;

namespace Ect.Actors.Daemon;

/// <summary>
/// Hosts one run: the actor system (coordinator, trainer, checkpointer, evaluators, control endpoint) in an
/// Akka.Hosting host (<see cref="DaemonHost"/>), the statistics consumers (stats.jsonl, display, coordinator)
/// and the stop signal. One daemon per run directory (<see cref="RunLock"/> refuses a second one).
/// </summary>
public static class RunDaemon
{
    public const string LockFile = RunLock.FileName;

    /// <summary>The actor system's own configuration (dispatchers, serializers, journal), separate from the run's `ect` config.</summary>
    public static Config SystemConfig(Config ect, string runDir, Config? extra = null)
    {
        var baseConfig = ConfigurationFactory.ParseString("""
            akka {
              # The run's actors are never reachable from the network: remoting belongs to the control endpoint's own
              # ActorSystem (Control/ControlSystem.cs), which hands validated commands to /user/run in-process.
              actor.provider = local
              loglevel = WARNING
              stdout-loglevel = WARNING
              log-dead-letters = off
              log-dead-letters-during-shutdown = off
              coordinated-shutdown.run-by-clr-shutdown-hook = off
              # Akka's default 10 ms tick wakes the .NET timer and a thread-pool worker ~100 times a second; on a
              # 2-core machine each wake-up preempts one of the trainer's OpenMP threads and its partner waits at
              # the next barrier. Nothing here needs finer timing than 0.1 s (measured in issue 4's note).
              scheduler.tick-duration = 100ms
            }
            # The trainer, the checkpointer and each evaluator get a thread of their own: blocking work there
            # never starves Akka's default dispatcher (persistence, control, coordinator).
            ect.trainer-dispatcher { type = PinnedDispatcher }
            ect.io-dispatcher { type = PinnedDispatcher }
            ect.evaluation-dispatcher { type = PinnedDispatcher }
            """);
        var c = (extra ?? Config.Empty)
            .WithFallback(ConfigurationFactory.ParseString(RunEventSerializer.Hocon))
            .WithFallback(PersistenceHocon.For(ect, runDir))
            .WithFallback(baseConfig);
        return c;
    }

    public static async Task<RunOutcome> RunAsync(RunSettings settings, string runDir, EngineFactory factory, CancellationToken stop,
        TextWriter? log = null, Action<ActorSystem, IActorRef>? onStarted = null)
    {
        log ??= Console.Out;
        Directory.CreateDirectory(runDir);
        // Released (and the file deleted) when RunAsync returns or throws; a SIGKILL leaves a stale, unlocked file.
        using var runLock = RunLock.Acquire(runDir);

        using var stats = new Subject<StepStatistics>();
        var completion = new TaskCompletionSource<RunOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        StatsFile? statsFile = null;
        using var writerThread = new EventLoopScheduler(ts => new Thread(ts) { IsBackground = true, Name = "ect-stats" });
        var display = new ProgressDisplay(settings.DisplayMode, settings.TotalSteps, settings.BatchSize, settings.LogIntervalSeconds, runDir);
        var ready = new ManualResetEventSlim();
        IDisposable? fileSub = null;

        var setup = new CoordinatorSetup(
            settings.Config, runDir, factory, stats,
            stats.Sample(TimeSpan.FromMilliseconds(500)),
            completion,
            OnRecovered: state =>
            {
                // Steps after the resume point are recomputed: drop their old lines first.
                statsFile = new StatsFile(runDir, state.LastCheckpoint?.Step ?? 0);
                fileSub = stats.ObserveOn(writerThread).Subscribe(statsFile.Write);
                ready.Set();
            });

        using var host = new DaemonHost(settings.Config, runDir, RunCoordinator.Props(setup));
        RunOutcome outcome;
        try
        {
            // The actor system, /user/run (the coordinator) and /user/control (when enabled), via Akka.Hosting.
            var (system, coordinator) = await host.StartAsync();
            onStarted?.Invoke(system, coordinator);
            using var displaySub = stats.Sample(TimeSpan.FromMilliseconds(200)).Subscribe(display.OnNext);
            display.Start();
            using var reg = stop.Register(() => coordinator.Tell(new StopRequested("interrupted by signal")));
            outcome = await completion.Task;
            await Task.Delay(250); // let the sampled display catch the last step
        }
        finally
        {
            display.Dispose();
            await host.StopAsync(TimeSpan.FromSeconds(20));
            // Close the file on the writer thread, after the lines it still holds.
            var closed = new TaskCompletionSource();
            writerThread.Schedule(() => { fileSub?.Dispose(); statsFile?.Dispose(); closed.TrySetResult(); });
            await closed.Task.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
        }
        try { LossPlot.Write(runDir); } catch (Exception e) { log.WriteLine($"loss plot not written: {e.Message}"); }
        return outcome;
    }
}
