using Akka.Configuration;
using ConfigurationException = Ect.Actors.Configuration.ConfigurationException;
using Ect.Actors.Persistence;
using Ect.Actors.Checkpoints;

namespace Ect.Actors.Run;

/// <summary>
/// Finds (or makes) the identity of the run in a run directory before the daemon starts it, reading the
/// journal directly (<see cref="JournalCatalog"/>):
/// run.json when present; else the run named by the checkpoints' metadata (run.json lost, re-created);
/// else a run journaled before identities (persistence id "ect-run": its SQLite journal in the directory,
/// or the directory's checkpoints without a run id); else the one run the directory's own SQLite journal records
/// in it (run.json lost before any checkpoint); else, when the journal already holds a run recorded in
/// this directory (it was deleted or emptied), a refusal; else a new run. Refusals are ConfigurationExceptions
/// (exit 2, nothing started).
/// </summary>
public static class RunIdentityResolver
{
    public sealed record Resolved(RunIdentity Identity, JournalCatalog Journal, string How);

    public static Resolved Resolve(Config ect, string runDir, bool newRun)
    {
        var dir = RunIdentity.FullPath(runDir);
        var journal = JournalCatalog.For(ect, dir);
        if (RunIdentity.Read(dir) is { } existing)
        {
            if (newRun)
                throw new ConfigurationException(
                    $"--new-run: run directory {dir} already holds run {existing} ({RunIdentity.FileName}); a new run needs another --run-dir.");
            return new Resolved(existing, journal, "continued");
        }

        var files = CheckpointMetadata.FilesIn(dir);
        var named = files.Select(CheckpointMetadata.Read).Where(m => m != null)
            .Select(m => RunIdentity.FromMetadata(m!)).Where(i => i != null).Select(i => i!).DistinctBy(i => i.Id).ToList();
        if (named.Count > 1)
            throw new ConfigurationException(
                $"Run directory {dir} has no {RunIdentity.FileName} and its checkpoints belong to {named.Count} different runs " +
                $"({string.Join(", ", named)}): keep one run's checkpoints in it.");
        if (named.Count == 1 && !newRun)
        {
            var id = named[0] with { Name = named[0].Name.Length > 0 ? named[0].Name : RunIdentity.NameOf(dir) };
            id.Write(dir);
            return new Resolved(id, journal, $"{RunIdentity.FileName} re-created from the checkpoints' metadata");
        }

        // Written before identities: one stream "ect-run". Adopted only where it is this directory's own.
        if (!newRun && (journal.IsInside(dir) || (files.Count > 0 && named.Count == 0))
            && journal.Run(RunIdentity.LegacyPersistenceId) is { IsRun: true })
        {
            var id = RunIdentity.Legacy(dir);
            id.Write(dir);
            return new Resolved(id, journal, "journaled before run identities (persistence id \"ect-run\")");
        }

        var earlier = newRun ? [] : journal.RunsRecordedIn(dir);
        // The directory's own SQLite journal names the one run recorded in it: run.json was lost, re-create it.
        if (journal.IsInside(dir) && earlier.Count == 1 && earlier[0].RunId.Length > 0)
        {
            var id = new RunIdentity(earlier[0].RunId, earlier[0].Name, earlier[0].PersistenceId);
            id.Write(dir);
            return new Resolved(id, journal, $"{RunIdentity.FileName} re-created from the run directory's journal");
        }
        if (earlier.Count > 0)
            throw new ConfigurationException(
                $"{journal.Description} already holds {string.Join("; ", earlier.Select(r => r.Describe()))}, but run directory {dir} " +
                $"has no {RunIdentity.FileName} and none of its checkpoints (deleted or emptied?). Restore the run directory to continue " +
                "that run, or start a new run in it with `ect train --new-run` (the old run stays in the journal).");

        var fresh = RunIdentity.New(dir);
        Directory.CreateDirectory(dir);
        fresh.Write(dir);
        return new Resolved(fresh, journal, "new run");
    }
}
