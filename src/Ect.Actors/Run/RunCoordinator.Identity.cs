using Ect.Actors.Persistence.Events;

namespace Ect.Actors.Run;

// The run's identity on recovery: the run directory and the journal stream must belong together before anything
// is replayed into a trainer (RunAgreement), and the journal records where the run lives (RunDirectoryChanged).
public sealed partial class RunCoordinator
{
    /// <summary>
    /// False when OnBegin must not go on: the run was refused (exit 2, the message names both sides), or the
    /// run's new directory is being journaled first (OnBegin runs again after the persist).
    /// </summary>
    private bool RunDirectoryAgrees()
    {
        if (_setup.Identity is not { } identity) return true; // tests that drive the coordinator without a daemon
        if (RunAgreement.Refusal(_state, identity, _setup.RunDir, _setup.Journal) is { } refusal)
        {
            Complete(new RunOutcome(2, refusal, _state.Step));
            return false;
        }
        var dir = RunIdentity.FullPath(_setup.RunDir);
        if (!_state.Started || _state.RunDirectory == dir) return true;
        PersistEvent(new RunDirectoryChanged
        {
            FromDir = _state.RunDirectory, ToDir = dir, Host = Environment.MachineName, Step = _state.Step,
            UnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        }, _ => OnBegin());
        return false;
    }
}
