using Ect.Actors.Persistence.Events;

namespace Ect.Actors.Run;

// The run's identity on recovery: the run directory and the journal stream must belong together before anything
// is replayed into a trainer (RunAgreement), and the journal records where the run lives (RunDirectoryChanged).
// The first step of Starting (RunCoordinator.OnBegin).
public sealed partial class RunCoordinator
{
    /// <summary>
    /// Goes on with <paramref name="then"/> when the run directory and the journal belong together (after journaling
    /// the run's new directory, if it moved); otherwise the run is refused (exit 2, the message names both sides).
    /// </summary>
    private void AgreeOnRunDirectory(Action then)
    {
        if (_setup.Identity is not { } identity) { then(); return; } // tests that drive the coordinator without a daemon
        if (RunAgreement.Refusal(_state, identity, _setup.RunDir, _setup.Journal) is { } refusal)
        {
            Complete(new RunOutcome(2, refusal, _state.Step));
            return;
        }
        var dir = RunIdentity.FullPath(_setup.RunDir);
        if (!_state.Started || _state.RunDirectory == dir) { then(); return; }
        PersistEvent(new RunDirectoryChanged
        {
            FromDir = _state.RunDirectory, ToDir = dir, Host = Environment.MachineName, Step = _state.Step,
            UnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        }, _ => then());
    }
}
