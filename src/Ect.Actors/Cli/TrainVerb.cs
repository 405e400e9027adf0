using System.CommandLine;
using System.Runtime.InteropServices;
using Ect.Actors.Configuration;
using Ect.Actors.Control;
using Ect.Actors.Daemon;
using Ect.Actors.Engine;

namespace Ect.Actors.Cli;

/// <summary>
/// `ect train [--config FILE]... [--set KEY=VALUE]... [--steps N] [--run-dir DIR] [--new-run]`: runs (or continues) a
/// training run. Exit 0 when the run finished or was stopped cleanly (SIGTERM, Ctrl-C, ect ctl stop, the step
/// cap), 1 when training failed, 2 when the configuration was refused (nothing started).
/// </summary>
public sealed class TrainVerb : ICliVerb
{
    public int Order => 10;
    /// <summary>A bad command line (e.g. `--steps abc`) is refused like a bad configuration: exit 2, nothing started.</summary>
    public int UsageErrorExitCode => 2;
    public const string DefaultRunDir = "runs/default";

    public Command Build()
    {
        var config = new Option<string[]>("--config") { Description = "HOCON file layered over the defaults (see `ect config show`); repeatable: later files override earlier ones, --set overrides all." };
        var set = new Option<string[]>("--set") { Description = "KEY=VALUE for any configuration key (repeatable), e.g. --set ect.data.batch-size=64.", AllowMultipleArgumentsPerToken = false };
        var steps = new Option<long?>("--steps") { Description = "Stop the run after N steps in total (a later `ect train` with a larger N continues it)." };
        var runDir = new Option<string>("--run-dir") { Description = "Run directory (journal, checkpoints, stats, samples). Started again on the same directory, the run continues.", DefaultValueFactory = _ => DefaultRunDir };
        var rebuild = new Option<bool>("--rebuild-journal") { Description = "Rebuild a damaged or missing journal.db from the run's checkpoint files (the damaged file is kept), then resume from the last one. Give the run's own --config/--set." };
        var revert = new Option<string[]>("--revert-command") { Description = "On a restart: undo the live change (`ect ctl set`) with this command id, from the resume step on (repeatable; the ids are in `ect ctl set`'s reply and in the message of a run that gave up)." };
        var cmd = new Command("train", "Train (or continue) a run: diffusion pretraining, ECT tuning, sample grids.");
        var newRun = new Option<bool>("--new-run") { Description = "Start a new run in a run directory without run.json although the journal holds an earlier run recorded there (deleted or emptied)." };
        cmd.Options.Add(config); cmd.Options.Add(set); cmd.Options.Add(steps); cmd.Options.Add(runDir); cmd.Options.Add(newRun); cmd.Options.Add(rebuild);
        cmd.Options.Add(revert);
        cmd.SetAction(r => Run(r.GetValue(config) ?? [], r.GetValue(set) ?? [], r.GetValue(steps), r.GetValue(runDir) ?? DefaultRunDir,
            r.GetValue(newRun), r.GetValue(rebuild), r.GetValue(revert)));
        return cmd;
    }

    public static int Run(IReadOnlyList<string> configFiles, string[] sets, long? steps, string runDir, bool newRun = false, bool rebuildJournal = false,
        string[]? revertCommands = null)
    {
        // Under mpirun: rank 0 goes on below (Distributed.DataParallelLaunch.Current set), the other ranks follow it.
        try
        {
            if (Ect.Mpi.MpiLaunch.Detect() is not null && Distributed.DataParallelLaunch.Current is null)
                return Distributed.DataParallelLaunch.Run(() => Run(configFiles, sets, steps, runDir, newRun, rebuildJournal, revertCommands));
        }
        catch (Ect.Mpi.MpiException e) { Console.Error.WriteLine(e.Message); return 2; }
        RunSettings settings;
        try
        {
            var all = sets.ToList();
            if (steps is { } n)
            {
                if (n <= 0) throw new ConfigurationException($"--steps {n}: must be > 0");
                all.Add($"ect.run.max-steps={n}");
            }
            if (revertCommands is { Length: > 0 })
                all.Add($"{Ect.Actors.Run.RunCoordinator.RevertCommandsKey}=[{string.Join(", ", revertCommands.Select(EctConfiguration.QuoteString))}]");
            var config = EctConfiguration.LoadFiles(configFiles, all);
            // PostgreSQL (hocon/postgres.conf): the connection string may come from ECT_PG_CONNECTION.
            if (config.GetString("ect.persistence.provider", "sqlite") == "postgresql")
            {
                try { config = Postgres.PostgresPersistence.Apply(config); }
                catch (InvalidOperationException e) { throw new ConfigurationException(e.Message); }
            }
            settings = RunSettings.From(config) with { ExplicitKeys = EctConfiguration.ExplicitKeys(configFiles, all) };
            Distributed.DataParallelLaunch.Current?.Check(settings);
            Engines.Check(settings, runDir); // ect.network.init of a continued run: checked against its recorded configuration
            if (ControlHook.Enabled(config)) ControlEndpoint.Configure(config, runDir);
        }
        catch (Exception e) when (e is ConfigurationException or ControlException)
        {
            Console.Error.WriteLine(e.Message);
            return 2;
        }

        using var stop = new CancellationTokenSource();
        // Our own handlers (Cancel = true): the run checkpoints and records before the process ends.
        // A second signal gets the default action (the process ends at once): the journal names only committed checkpoints.
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = !stop.IsCancellationRequested; stop.Cancel(); });
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = !stop.IsCancellationRequested; stop.Cancel(); });
        try
        {
            var outcome = RunDaemon.RunAsync(settings, runDir, Engines.ForSettings(settings), stop.Token, newRun: newRun, rebuildJournal: rebuildJournal).GetAwaiter().GetResult();
            (outcome.ExitCode == 0 ? Console.Out : Console.Error).WriteLine(outcome.Message);
            return outcome.ExitCode;
        }
        catch (Exception e) when (e is ConfigurationException or ControlException)
        {
            Console.Error.WriteLine(e.Message);
            return 2;
        }
    }
}
