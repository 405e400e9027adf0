using Akka.Event;
using Ect.Actors.Configuration;
using Ect.Actors.Persistence.Events;
using Google.Protobuf;

namespace Ect.Actors.Run;

/// <summary>
/// What a restart (`ect train` again on a run directory) may change, and how it is journaled. The run's computation
/// is fixed when it starts (RunStarted records the whole configuration); a restart may change only what does not
/// change the bits: when to stop (ect.run.max-steps) and where the data is (ect.data.path, when given explicitly:
/// the same files in another place, e.g. a dataset that moved or a path that was wrong from the start). Both become
/// ConfigChanged events, so a later restart and `ect runs` see them. Display, control and the fake engine's timing
/// follow the command line without a record (RestartMutable). Everything else is reported and ignored.
/// </summary>
public sealed partial class RunCoordinator
{
    private const string ResumeRule =
        "On resume only ect.run.max-steps and an explicitly given ect.data.path (--set or --config) change a run " +
        "(journaled), display.* and control.* follow the command line; see hocon/default.conf. Start a new --run-dir for other changes.";

    /// <summary>The ConfigChanged events this restart journals before training resumes.</summary>
    private List<ConfigChanged> RestartChanges()
    {
        var changes = new List<ConfigChanged>();
        var effective = EffectiveConfig();
        var step = _state.LastCheckpoint?.Step ?? 0;

        var cliCap = _setup.CliConfig.GetLong("ect.run.max-steps", 0);
        if (cliCap != effective.GetLong("ect.run.max-steps", 0))
            changes.Add(new ConfigChanged { Key = "ect.run.max-steps", Value = cliCap.ToString(), Step = step, IdempotencyKey = $"restart-{Guid.NewGuid():N}" });

        const string dataPath = "ect.data.path";
        var given = _setup.CliConfig.GetString(dataPath, "");
        if (_setup.ExplicitKeys?.Contains(dataPath) == true && given.Length > 0 && given != effective.GetString(dataPath, ""))
        {
            // Step 0: the location holds for the whole run (the trainer applies changes at or before its resume
            // point when it builds its data source, whichever checkpoint it resumes from).
            _log.Warning("The data location changes on resume: {0} = \"{1}\" (was \"{2}\"); the files must be the same dataset", dataPath, given, effective.GetString(dataPath, ""));
            changes.Add(new ConfigChanged { Key = dataPath, Value = EctConfiguration.QuoteString(given), Step = 0, IdempotencyKey = $"restart-{Guid.NewGuid():N}" });
        }
        return changes;
    }

    /// <summary>
    /// SHA-256 (hex) of the configuration the run started with, as journaled (RunStarted.config_hocon): the "config
    /// digest" of every checkpoint (`ect inspect`). It never changes during a run, so recomputed checkpoints keep their bits.
    /// </summary>
    public static string RunConfigDigest(RunState state) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(state.ConfigHocon)));

    /// <summary>Journals the events in order, then runs <paramref name="then"/> once (at once when there are none).</summary>
    private void PersistInOrder<T>(IReadOnlyList<T> events, Action then) where T : IMessage
    {
        if (events.Count == 0) { then(); return; }
        int left = events.Count;
        foreach (var e in events) PersistEvent(e, _ => { if (--left == 0) then(); });
    }
}
