using Ect.Actors.Configuration;

namespace Ect.Actors.Daemon;

/// <summary>
/// One daemon per run directory: RUN_DIR/run.lock, held open with FileShare.None for the daemon's lifetime.
/// On Unix .NET takes an advisory flock on it, which the kernel drops when the process dies, so a file left
/// by a SIGKILLed daemon is stale and does not block a restart; only a live holder refuses a second daemon.
/// Disposing (a clean shutdown) deletes the file, then releases the lock.
/// </summary>
public sealed class RunLock : IDisposable
{
    public const string FileName = "run.lock";

    private readonly FileStream _stream;
    private bool _disposed;

    private RunLock(string path, FileStream stream)
    {
        Path = path;
        _stream = stream;
    }

    /// <summary>The lock file's path.</summary>
    public string Path { get; }

    /// <summary>Takes the run directory's lock, or throws <see cref="ConfigurationException"/> when a live daemon holds it.</summary>
    public static RunLock Acquire(string runDir)
    {
        var path = System.IO.Path.Combine(runDir, FileName);
        // Two tries: a daemon that is exiting deletes the file while it still holds the lock; our open may have
        // caught the old (now unlinked) file. Locking that one would guard nothing, so open the path again.
        for (int attempt = 0; ; attempt++)
        {
            FileStream stream;
            try
            {
                stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                throw new ConfigurationException(
                    $"--run-dir {runDir}: another `ect train` is running on this run directory ({path} is locked). " +
                    "Stop it first (`ect ctl stop`), or use another --run-dir.");
            }
            if (File.Exists(path) || attempt > 0) return new RunLock(path, stream);
            stream.Dispose();
        }
    }

    /// <summary>
    /// Whether a live daemon holds <paramref name="runDir"/>'s lock. False when run.lock is absent (the daemon exited
    /// cleanly) or nobody holds it (a killed daemon's stale file). Probes with a shared lock that it drops at once;
    /// an `ect train` that starts in that instant is told the directory is in use and can simply be started again.
    /// </summary>
    public static bool IsHeld(string runDir)
    {
        var path = System.IO.Path.Combine(runDir, FileName);
        try
        {
            // Read access with sharing: .NET takes a shared flock, which fails only against the daemon's exclusive one.
            using var probe = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            return false;
        }
        catch (FileNotFoundException) { return false; }
        catch (DirectoryNotFoundException) { return false; }
        catch (IOException) { return true; }
        catch (UnauthorizedAccessException) { return true; } // cannot tell: let the caller try to reach it
    }

    /// <summary>Deletes the lock file, then releases the lock (delete first: no moment where a stale-looking file is unlocked).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try { File.Delete(Path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        _stream.Dispose();
    }
}
