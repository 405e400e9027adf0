using Akka.Event;

namespace Ect.Actors.Run;

/// <summary>
/// An event the journal could not write (a read-only or immutable journal file, a full disk, a database that went
/// away). Akka stops the coordinator after this; PostStop hands the reason to `ect train`, which must not say "start
/// again to resume" when the next start would fail the same way: it names the journal, the error and the fix.
/// </summary>
public sealed partial class RunCoordinator
{
    private string? _journalWriteFailure;

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        _journalWriteFailure = JournalWriteFailure(cause, @event, sequenceNr, rejected: false);
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        // A rejected event (the serializer refused it) is not fatal to Akka; for the run it is: a decision went unrecorded.
        _journalWriteFailure = JournalWriteFailure(cause, @event, sequenceNr, rejected: true);
        base.OnPersistRejected(cause, @event, sequenceNr);
        _log.Error(_journalWriteFailure);
        Context.Stop(Self);
    }

    private string JournalWriteFailure(Exception cause, object @event, long sequenceNr, bool rejected)
    {
        var journal = _setup.CliConfig.GetString("ect.persistence.provider", "sqlite") == "postgresql"
            ? "the PostgreSQL journal (ect.persistence.connection-string)"
            : $"the journal {Path.GetFullPath(Path.Combine(_setup.RunDir, _setup.CliConfig.GetString("ect.persistence.sqlite-file", "journal.db")))}";
        var what = $"{@event.GetType().Name} #{sequenceNr}";
        var step = _state.LastCheckpoint?.Step ?? 0;
        return rejected
            ? $"{journal} refused event {what}: {cause.GetBaseException().Message}. Nothing after step {step} was recorded; this is a bug in ect, please report it with this message."
            : $"{journal} cannot be written (event {what}: {cause.GetBaseException().Message}). " +
              $"The run stopped; everything up to the checkpoint at step {step} is kept. Make the journal writable (a read-only " +
              "mount: remount it read-write; an immutable file: `chattr -i`; permissions: chmod/chown; a full disk: free space; " +
              "PostgreSQL: check that the server is up), then start `ect train` on the same run directory to resume.";
    }
}
