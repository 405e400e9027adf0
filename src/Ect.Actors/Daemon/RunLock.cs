using System.Runtime.InteropServices;
using Ect.Actors.Configuration;

namespace Ect.Actors.Daemon;

/// <summary>
/// One daemon per run directory: RUN_DIR/run.lock, held open with FileShare.None for the daemon's lifetime.
/// On Unix .NET takes an advisory flock on it, which the kernel drops when the process dies, so a file left
/// by a SIGKILLed daemon is stale and does not block a restart; only a live holder refuses a second daemon.
/// Disposing (a clean shutdown) deletes the file, then releases the lock.
///
/// The file alone is not enough: deleting run.lock under a live daemon unlinks the locked inode, and a second daemon
/// would create and lock a new file at the same path, then overwrite control.json. So on Linux and macOS the lock
/// that decides is a kernel flock on the run directory itself, held through an open descriptor for the daemon's
/// lifetime: no file deletion can release it, and the kernel drops it when the process dies, however it dies.
/// </summary>
public sealed class RunLock : IDisposable
{
    public const string FileName = "run.lock";

    private readonly FileStream _stream;
    private readonly int _directoryFd;
    private bool _disposed;

    private RunLock(string path, FileStream stream, int directoryFd)
    {
        Path = path;
        _stream = stream;
        _directoryFd = directoryFd;
    }

    /// <summary>The lock file's path.</summary>
    public string Path { get; }

    /// <summary>Takes the run directory's lock, or throws <see cref="ConfigurationException"/> when a live daemon holds it.</summary>
    public static RunLock Acquire(string runDir)
    {
        var path = System.IO.Path.Combine(runDir, FileName);
        var directoryFd = LockDirectory(runDir, path);
        try { return AcquireFile(runDir, path, directoryFd); }
        catch
        {
            if (directoryFd >= 0) close(directoryFd);
            throw;
        }
    }

    private static RunLock AcquireFile(string runDir, string path, int directoryFd)
    {
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
                throw Busy(runDir, path);
            }
            if (File.Exists(path) || attempt > 0) return new RunLock(path, stream, directoryFd);
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
        if (_directoryFd >= 0) close(_directoryFd);
    }

    private static ConfigurationException Busy(string runDir, string path) =>
        new($"--run-dir {runDir}: another `ect train` is running on this run directory ({path} is locked). " +
            "Stop it first (`ect ctl stop`), or use another --run-dir.");

    /// <summary>
    /// flock(LOCK_EX | LOCK_NB) on an open descriptor of the run directory: -1 where there is no flock (Windows, where
    /// FileShare.None on run.lock is a mandatory lock already). A directory that cannot be opened is left to the
    /// file lock below, which reports it.
    /// </summary>
    private static int LockDirectory(string runDir, string path)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return -1;
        var fd = open(runDir, OpenReadOnly | (OperatingSystem.IsLinux() ? OpenCloseOnExecLinux : 0));
        if (fd < 0) return -1;
        if (flock(fd, LockExclusive | LockNonBlocking) == 0) return fd;
        var errno = Marshal.GetLastPInvokeError();
        close(fd);
        if (errno is EWouldBlockLinux or EWouldBlockMac) throw Busy(runDir, path);
        return -1; // a file system without flock: the file lock still guards
    }

    private const int OpenReadOnly = 0, OpenCloseOnExecLinux = 0x80000; // O_RDONLY, O_CLOEXEC (Linux, every architecture)
    private const int LockExclusive = 2, LockNonBlocking = 4;            // LOCK_EX, LOCK_NB
    private const int EWouldBlockLinux = 11, EWouldBlockMac = 35;        // EWOULDBLOCK

    [DllImport("libc", SetLastError = true)] private static extern int open(string path, int flags);
    [DllImport("libc", SetLastError = true)] private static extern int flock(int fd, int operation);
    [DllImport("libc")] private static extern int close(int fd);
}
