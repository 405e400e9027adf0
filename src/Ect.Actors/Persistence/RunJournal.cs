using Google.Protobuf;

namespace Ect.Actors.Persistence;

/// <summary>
/// A run directory's own SQLite journal, read through <see cref="JournalCatalog"/> (the one reader of the journal:
/// `ect runs`, `ect history`, `ect inspect`, the run-identity check and the tests all go through it). The daemon
/// itself recovers through Akka.
/// </summary>
public static class RunJournal
{
    public const string DefaultFile = "journal.db";

    /// <summary>
    /// The events of one run, oldest first: by default the run that <paramref name="runDir"/> holds (its run.json's
    /// persistence id; "ect-run" for a directory without one), read from the SQLite <paramref name="file"/> in it.
    /// </summary>
    public static IReadOnlyList<JournalCatalog.Entry> Read(string runDir, string file = DefaultFile, string? persistenceId = null) =>
        ReadAfter(runDir, 0, file, persistenceId);

    /// <summary>
    /// The events with a sequence number above <paramref name="afterSequenceNr"/> (0 = all), oldest first.
    /// FileNotFoundException when there is no journal file; <see cref="JournalCatalog.NoJournalTableException"/> when
    /// it has no journal table yet (a daemon that has created the file but not its tables).
    /// </summary>
    public static IReadOnlyList<JournalCatalog.Entry> ReadAfter(string runDir, long afterSequenceNr, string file = DefaultFile, string? persistenceId = null)
    {
        persistenceId ??= Run.RunIdentity.PersistenceIdOf(runDir);
        var path = Path.Combine(runDir, file);
        if (!File.Exists(path)) throw new FileNotFoundException($"No journal at {path}", path);
        return JournalCatalog.Sqlite(path).Events(persistenceId, afterSequenceNr, requireTable: true);
    }

    public static IEnumerable<T> Events<T>(IEnumerable<JournalCatalog.Entry> entries) where T : IMessage => entries.Select(e => e.Event).OfType<T>();
}
