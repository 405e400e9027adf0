using Akka.Configuration;
using Ect.Actors.Configuration;
using ConfigurationException = Ect.Actors.Configuration.ConfigurationException;

namespace Ect.Actors.Daemon;

/// <summary>
/// Before anything starts: the run directory, its checkpoints/ folder and the SQLite journal must be writable. Without
/// this check a read-only mount showed up as "another `ect train` is running" (the lock file could not be opened),
/// an immutable folder as an unhandled exception, and an immutable journal.db as a run that recovered, failed at its
/// first event and said "start again to resume" (which fails again the same way). Each refusal names the path, the
/// operating system's reason and the fix.
/// </summary>
public static class RunDirectoryCheck
{
    /// <summary>Creates the run directory if needed; throws <see cref="ConfigurationException"/> naming what cannot be written.</summary>
    public static void EnsureWritable(string runDir, Config ect)
    {
        try { Directory.CreateDirectory(runDir); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigurationException($"--run-dir {runDir}: the run directory cannot be created ({Reason(e)}). " +
                "Create it by hand or use another --run-dir.");
        }
        ProbeFolder(runDir, $"--run-dir {runDir}: the run directory");
        var checkpoints = Path.Combine(runDir, Checkpoints.Checkpointer.Folder);
        if (Directory.Exists(checkpoints)) ProbeFolder(checkpoints, $"--run-dir {runDir}: its checkpoint folder {checkpoints}");
        if (ect.GetString("ect.persistence.provider", "sqlite") != "sqlite") return;
        var journal = Path.Combine(runDir, ect.GetString("ect.persistence.sqlite-file", "journal.db"));
        foreach (var file in new[] { journal, journal + "-wal", journal + "-shm", journal + "-journal" }.Where(File.Exists))
        {
            try
            {
                // The journal is opened for writing like SQLite does (no lock taken, no byte changed).
                using var f = new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ConfigurationException($"--run-dir {runDir}: the run's journal {file} cannot be written ({Reason(e)}); " +
                    "the run cannot record anything, so it cannot start or resume. " + Fix);
            }
        }
    }

    private const string Fix = "Make it writable (a read-only mount: remount it read-write; an immutable file or folder: " +
        "`chattr -i`; permissions: chmod/chown; a full disk: free space), then start `ect train` again; or use another --run-dir.";

    private static void ProbeFolder(string folder, string what)
    {
        var probe = Path.Combine(folder, $".ect-write-check-{Environment.ProcessId}");
        try
        {
            using (var f = new FileStream(probe, FileMode.Create, FileAccess.Write, FileShare.None)) f.WriteByte(0);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(probe); } catch (Exception) { /* nothing was created, or it cannot be deleted either */ }
            throw new ConfigurationException($"{what} is not writable ({Reason(e, probe)}): this is not another `ect train` " +
                "holding the run, the directory itself refuses writes. " + Fix);
        }
    }

    /// <summary>The operating system's words (the inner exception holds the errno text for EPERM/EACCES) and, where
    /// known, the errno's number and name (Run.IoError, as the checkpointer reports it: "errno 28, ENOSPC").</summary>
    private static string Reason(Exception e, string? probe = null)
    {
        var words = e.InnerException is { } inner && inner.Message != e.Message ? $"{inner.Message}: {e.Message}" : e.Message;
        var errno = System.Text.RegularExpressions.Regex.Match(Run.IoError.Describe(e, probe), @"\(errno [^)]*\)$");
        return errno.Success ? $"{words} {errno.Value}" : words;
    }
}
