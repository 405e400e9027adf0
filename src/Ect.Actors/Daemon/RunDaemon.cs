using System.Reactive.Concurrency;
using System.Runtime.CompilerServices;
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
        TextWriter? log = null, Action<ActorSystem, IActorRef>? onStarted = null, bool newRun = false, bool rebuildJournal = false)
    {
        log ??= Console.Out;
        // A read-only run directory or journal is refused by name here, before the lock (issue 12).
        RunDirectoryCheck.EnsureWritable(runDir, settings.Config);
        // Released (and the file deleted) when RunAsync returns or throws; a SIGKILL leaves a stale, unlocked file.
        using var runLock = RunLock.Acquire(runDir);
        StartLeftovers.Remove(runDir, log);
        // A damaged journal fails here, in seconds, naming the file (Akka's recovery would retry for 30 s and never
        // say which file); --rebuild-journal rebuilds it from the checkpoint files first.
        if (await JournalPreflight.CheckAsync(settings, runDir, rebuildJournal, log) is { } refused) return refused;
        // The control token before anything starts: a disk too full for 64 bytes fails here, naming the file,
        // instead of in the middle of the actor system's start-up (ControlHook.Start reads this same token).
        if (ControlHook.Enabled(settings.Config)) Control.ControlEndpoint.EnsureToken(settings.Config, runDir);

        // Which run this directory holds (run.json), checked against the journal before anything starts: its
        // persistence id is the run's own, so many runs can share one journal (PostgreSQL).
        RunIdentityResolver.Resolved run;
        try { run = RunIdentityResolver.Resolve(settings.Config, runDir, newRun); }
        catch (Exception e) when (e is IOException or InvalidDataException or System.Data.Common.DbException)
        {
            return new RunOutcome(1, $"The run in {runDir} cannot start: its journal cannot be read: {e.Message}", 0);
        }

        using var stats = new Subject<TrainingProgress>();
        var completion = new TaskCompletionSource<RunOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        StatsFile? statsFile = null;
        using var writerThread = new EventLoopScheduler(ts => new Thread(ts) { IsBackground = true, Name = "ect-stats" });
        var display = new ProgressDisplay(settings.DisplayMode, RunBanner.InvocationTarget(settings), settings.TotalSteps, settings.BatchSize,
            settings.LogIntervalSeconds, runDir);
        var banner = new RunBanner(log, runDir, settings);
        banner.Header(run.Identity, run.How, run.Journal.Description);
        // The engine factory runs on the trainer's thread: what it built completes the first screen, and the run's
        // recorded settings (not the command line's, on a resumed run) set the display's step counts.
        EngineFactory described = (s, dir) =>
        {
            var built = factory(s, dir);
            display.SetTarget(RunBanner.InvocationTarget(s), s.TotalSteps);
            banner.Engine(s, built.Item1, built.Item2);
            return built;
        };
        IDisposable? fileSub = null;

        var setup = new CoordinatorSetup(
            settings.Config, runDir, described, stats,
            stats.Sample(TimeSpan.FromMilliseconds(500)),
            completion,
            PersistenceId: run.Identity.PersistenceId,
            Identity: run.Identity,
            Journal: run.Journal.Description,
            OnRecovered: state =>
            {
                banner.Recovered(state);
                // Steps after the resume point are recomputed: drop their old lines first. A file that cannot be
                // rewritten (full disk) costs the statistics, not the run: the checkpoints decide its fate.
                try
                {
                    var file = new StatsFile(runDir, state.LastCheckpoint?.Step ?? 0) { OnFailure = m => Warn(log, m) };
                    statsFile = file;
                    fileSub = stats.ObserveOn(writerThread).Subscribe(file.Write);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    try { File.Delete(Path.Combine(runDir, StatsFile.Name + ".tmp")); } catch { /* best effort */ }
                    Warn(log, $"{StatsFile.Name} not written: {IoError.Describe(e)}");
                }
            },
            ExplicitKeys: settings.ExplicitKeys);

        using var host = new DaemonHost(settings.Config, runDir, RunCoordinator.Props(setup));
        RunOutcome outcome;
        try
        {
            // The actor system, /user/run (the coordinator) and /user/control (when enabled), via Akka.Hosting.
            var (system, coordinator) = await host.StartAsync();
            onStarted?.Invoke(system, coordinator);
            using var displaySub = stats.Sample(TimeSpan.FromMilliseconds(200)).Subscribe(display.OnNext);
            var lastStep = new StrongBox<long>();
            using var stepSub = stats.Subscribe(s => lastStep.Value = s.Step);
            using var reg = stop.Register(() => coordinator.Tell(new StopRequested("interrupted by signal")));
            // The first screen before the live panel (which redraws the terminal); a run that ends before it has a
            // trainer (refused, already finished), or a stop signal, does not wait for it.
            await Task.WhenAny(banner.Done, completion.Task, Task.Delay(Timeout.Infinite, stop));
            display.Start();
            outcome = await StopBounded(completion.Task, stop, settings.StopTimeoutSeconds, lastStep);
            await Task.Delay(250); // let the sampled display catch the last step
        }
        finally
        {
            display.Dispose();
            // After a stop that timed out the actor system cannot stop cleanly either (a step still runs): do not
            // wait for its coordinated shutdown's own 10 s phase timeouts.
            bool forced = stop.IsCancellationRequested && !completion.Task.IsCompleted;
            await host.StopAsync(TimeSpan.FromSeconds(forced ? 2 : 20));
            // Close the file on the writer thread, after the lines it still holds. Nothing scheduled there may
            // throw: an exception on that thread would end the process (SIGABRT) with the run half shut down.
            var closed = new TaskCompletionSource();
            writerThread.Schedule(() =>
            {
                try { fileSub?.Dispose(); statsFile?.Dispose(); }
                catch (Exception e) { Warn(log, $"{StatsFile.Name} not closed cleanly: {e.Message}"); }
                finally { closed.TrySetResult(); }
            });
            await closed.Task.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
        }
        try { LossPlot.Write(runDir); } catch (Exception e) { log.WriteLine($"loss plot not written: {e.Message}"); }
        return outcome;
    }

    /// <summary>
    /// The run's outcome, or, once a stop was asked for (SIGTERM, Ctrl-C) and <paramref name="seconds"/> have passed
    /// without one, an exit-1 outcome: `ect train` must end within a bounded time even when the clean stop cannot
    /// finish (a step that never returns, a final checkpoint that cannot be written). Ending without the final
    /// checkpoint is safe: the journal only names complete, committed checkpoints.
    /// </summary>
    internal static async Task<RunOutcome> StopBounded(Task<RunOutcome> outcome, CancellationToken stop, double seconds, StrongBox<long> lastStep)
    {
        var stopAsked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (stop.Register(() => stopAsked.TrySetResult()))
        {
            var deadline = stopAsked.Task.ContinueWith(_ => Task.Delay(TimeSpan.FromSeconds(seconds)), TaskScheduler.Default).Unwrap();
            if (await Task.WhenAny(outcome, deadline) == outcome) return await outcome;
        }
        return new RunOutcome(1,
            $"The run did not stop within {seconds:0.#} s of the stop signal (ect.run.stop-timeout-seconds) and was ended without a final checkpoint. " +
            "Every committed checkpoint is intact: `ect train` on the same run directory resumes from the last one.", lastStep.Value);
    }

    private static readonly object WarnLock = new();

    /// <summary>A warning from a background thread: on the log writer, never throwing.</summary>
    private static void Warn(TextWriter log, string message)
    {
        try { lock (WarnLock) log.WriteLine($"warning: {message}"); } catch { /* nowhere left to report it */ }
    }
}
