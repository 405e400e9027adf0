using System.Globalization;
using Ect.Actors.Persistence.Events;

namespace Ect.Actors.Run;

/// <summary>
/// Which journaled live changes (`ect ctl set`, a restart's step cap, a revert) a resumed trainer replays.
/// Rule: a change is superseded by a change of the same key journaled after it that takes effect at the same step or
/// earlier. Changes journaled in step order (a healthy run) all stay; a change made after a rollback to a step before
/// an earlier change (`ect ctl set tuning.lr=1e-4` while a replayed `tuning.lr=1e308` at a later step is pending, or
/// the revert `ect train --revert-command ID` journals at the resume step) wins for ever, on every later replay.
/// A pure function of the journal, so every replay of the same journal replays the same changes.
/// </summary>
public static class LiveChanges
{
    public static List<ConfigChanged> Effective(IReadOnlyList<ConfigChanged> journalOrder)
    {
        var kept = new List<ConfigChanged>(journalOrder.Count);
        for (int i = 0; i < journalOrder.Count; i++)
        {
            var c = journalOrder[i];
            var superseded = false;
            for (int j = i + 1; j < journalOrder.Count && !superseded; j++)
                superseded = journalOrder[j].Key == c.Key && journalOrder[j].Step <= c.Step;
            if (!superseded) kept.Add(c);
        }
        return kept;
    }

    /// <summary>The idempotency key of the change that reverts the command <paramref name="commandKey"/>.</summary>
    public static string RevertKey(string commandKey) => "revert:" + commandKey;

    /// <summary>One line per live change of the journal, with the command id `--revert-command` takes.</summary>
    public static string Describe(IEnumerable<ConfigChanged> changes) =>
        string.Join("; ", changes.Select(c =>
            $"{c.Key} = {c.Value} from step {c.Step.ToString(CultureInfo.InvariantCulture)} (command {c.IdempotencyKey})"));
}
