using Akka.Event;
using Ect.Actors.Persistence.Events;

namespace Ect.Actors.Run;

// A data-parallel run (mpirun -np K, Distributed/): the journal records each change of the number of ranks, and
// ranks that lost bit-identity end the run.
public sealed partial class RunCoordinator
{
    /// <summary>This process's number of ranks (1 without mpirun).</summary>
    private static int WorldSize => Distributed.DataParallelLaunch.Current?.World.Size ?? 1;

    /// <summary>
    /// False while a change of the number of ranks is journaled (then <paramref name="then"/> runs): a run continued
    /// with another K resumes from its last checkpoint, and `ect inspect` / `ect history` show where K changed.
    /// </summary>
    private bool WorldSizeRecorded(Action then)
    {
        if (_state.WorldSize == WorldSize) return true;
        var from = _state.WorldSize;
        PersistEvent(new WorldSizeChanged { FromSize = from, ToSize = WorldSize, Step = _state.Step, UnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() }, _ =>
        {
            if (_state.Step > 0)
                _log.Warning("The run continues on {0} ranks (it last ran on {1}) from its checkpoint at step {2}: not bit-identical with a run that kept {1}.", WorldSize, from, _state.Step);
            then();
        });
        return false;
    }

    private void OnRanksDiverged(RanksDivergedAt m)
    {
        var reason = $"rank(s) {string.Join(", ", m.Ranks)} of {m.WorldSize} diverged from rank 0 after step {m.Step} (weights/EMA digests differ)";
        PersistEvent(new RanksDiverged { Step = m.Step, Ranks = { m.Ranks }, WorldSize = m.WorldSize, Reason = reason }, _ => EndWithError(m.Step, reason));
    }

    /// <summary>A worker stuck inside a step (ect.distributed.step-timeout-s): journaled as the run's interruption (RunInterrupted, naming rank and step).</summary>
    private void OnRankHung(RankHungAt m) => EndWithError(m.Step, $"run step {m.Step}: {m.Reason}");
}

/// <summary>Trainer -> coordinator: the digest check after Step found ranks whose weights/EMA differ from rank 0's.</summary>
internal sealed record RanksDivergedAt(int Generation, long Step, IReadOnlyList<int> Ranks, int WorldSize);

/// <summary>Trainer -> coordinator: a worker did not reach a step's all-reduce within ect.distributed.step-timeout-s.</summary>
internal sealed record RankHungAt(int Generation, long Step, string Reason);
