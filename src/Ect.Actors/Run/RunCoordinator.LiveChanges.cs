using Akka.Event;
using Ect.Actors.Configuration;
using Ect.Actors.Persistence.Events;

namespace Ect.Actors.Run;

// The way out of a run poisoned by a live change (issue 12, point 4): `ect train --revert-command ID` journals, at the
// resume step, the value the key had before command ID; LiveChanges.Effective makes that revert win over the replayed
// change on this and every later replay. A resumed run whose journaled changes are outside the live keys' ranges is
// refused with the list of its changes and their ids, instead of failing the same way on every restart.
public sealed partial class RunCoordinator
{
    /// <summary>`ect train --revert-command ID` (repeatable) sets this key on the restart's command line.</summary>
    public const string RevertCommandsKey = "ect.run.revert-commands";

    /// <summary>A restart: the reverts asked for, then the ranges of the journaled changes, then the run.</summary>
    private void ResumeWithReverts()
    {
        var step = _state.LastCheckpoint?.Step ?? 0;
        var reverts = new List<ConfigChanged>();
        foreach (var id in RequestedReverts())
        {
            if (_state.Commands.ContainsKey(LiveChanges.RevertKey(id))) continue; // an earlier restart reverted it
            var target = _state.ConfigChanges.LastOrDefault(c => c.IdempotencyKey == id);
            if (target is null)
            {
                Complete(new RunOutcome(2, $"--revert-command {id}: no live change of the run in {_setup.RunDir} has that id." +
                    (LiveChangesHint() is { Length: > 0 } h ? h : " The run has no live changes."), step));
                return;
            }
            reverts.Add(new ConfigChanged { Key = target.Key, Value = ValueBefore(target), Step = step, IdempotencyKey = LiveChanges.RevertKey(id) });
        }
        PersistReverts(reverts, 0);
    }

    private IReadOnlyList<string> RequestedReverts() =>
        _setup.CliConfig.HasPath(RevertCommandsKey)
            ? _setup.CliConfig.GetStringList(RevertCommandsKey).Where(s => !string.IsNullOrWhiteSpace(s)).Distinct().ToList()
            : [];

    private void PersistReverts(List<ConfigChanged> reverts, int i)
    {
        if (i == reverts.Count) { CheckJournaledRangesThenInitialize(); return; }
        PersistEvent(reverts[i], e =>
        {
            _log.Warning("Reverted command {0}: {1} = {2} from step {3}", e.IdempotencyKey["revert:".Length..], e.Key, e.Value, e.Step);
            PersistReverts(reverts, i + 1);
        });
    }

    /// <summary>The value <paramref name="change"/>'s key had before it: the change of that key journaled last before it, else the recorded configuration's.</summary>
    private string ValueBefore(ConfigChanged change)
    {
        var earlier = _state.ConfigChanges.TakeWhile(c => !ReferenceEquals(c, change)).LastOrDefault(c => c.Key == change.Key);
        return earlier?.Value ?? EctConfiguration.Inline(_config.GetValue(change.Key));
    }

    private void CheckJournaledRangesThenInitialize()
    {
        // A journal written before the ranges existed may hold a value outside one (a change, or even the recorded
        // configuration): end with the reason rather than fail inside Initialize on every start.
        var bad = LiveKeyRanges.Violations(EffectiveConfig()).ToList();
        if (bad.Count > 0)
        {
            Complete(new RunOutcome(2, $"The run in {_setup.RunDir} cannot resume: its journaled configuration puts {string.Join("; ", bad)}." +
                LiveChangesHint(), _state.LastCheckpoint?.Step ?? 0));
            return;
        }
        Initialize();
    }

    /// <summary>The run's live changes with their ids and how to undo one ("" when it has none).</summary>
    internal string LiveChangesHint()
    {
        var changes = _state.ConfigChanges.Where(c => !c.IdempotencyKey.StartsWith("restart-", StringComparison.Ordinal)
                                                     && !c.IdempotencyKey.StartsWith("revert:", StringComparison.Ordinal)).ToList();
        return changes.Count == 0 ? ""
            : $" Live changes of this run: {LiveChanges.Describe(changes)}. Undo one with `ect train --run-dir {_setup.RunDir} --revert-command ID`.";
    }
}
