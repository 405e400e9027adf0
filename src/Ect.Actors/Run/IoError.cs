using System.Runtime.InteropServices;

namespace Ect.Actors.Run;

/// <summary>
/// Says which operating-system error a failed file operation met, as "No space left on device (errno 28, ENOSPC)".
/// On Unix .NET keeps the errno in an IOException's HResult; an UnauthorizedAccessException (EACCES, EPERM, EROFS...)
/// does not keep it, so the failed creation is repeated once with open(2) to read the errno itself.
/// </summary>
public static class IoError
{
    private static readonly Dictionary<int, string> Names = new()
    {
        [1] = "EPERM", [2] = "ENOENT", [5] = "EIO", [9] = "EBADF", [12] = "ENOMEM", [13] = "EACCES", [17] = "EEXIST",
        [20] = "ENOTDIR", [21] = "EISDIR", [24] = "EMFILE", [27] = "EFBIG", [28] = "ENOSPC", [30] = "EROFS",
        [36] = "ENAMETOOLONG", [122] = "EDQUOT",
    };

    /// <summary>The errno behind <paramref name="e"/>, or null when it cannot be told.</summary>
    /// <param name="path">The file that was being created or written (probed again when the exception lost the errno).</param>
    public static int? Errno(Exception e, string? path = null) => FromHResult(e) ?? Probe(e, path);

    // On Unix an IOException built from an errno carries it as HResult; mapped ones (DirectoryNotFoundException for
    // ENOTDIR/ENOENT, UnauthorizedAccessException for EACCES/EPERM) carry a Windows HRESULT instead.
    private static int? FromHResult(Exception e) => e is IOException && e.HResult is > 0 and < 4096 ? e.HResult : null;

    private static int? Probe(Exception e, string? path) =>
        e is IOException or UnauthorizedAccessException && path is not null && OperatingSystem.IsLinux() ? ProbeCreate(path) : null;

    /// <summary>"message (errno N, NAME)" for <paramref name="e"/>; the message alone when no errno is known.</summary>
    public static string Describe(Exception e, string? path = null)
    {
        var message = e.Message.TrimEnd('.');
        if (FromHResult(e) is { } n) return $"{message} ({Name(n)})";
        if (Probe(e, path) is { } p) return $"{Marshal.GetPInvokeErrorMessage(p)} ({Name(p)})";
        return $"{e.GetType().Name}: {message}";
    }

    private static string Name(int n) => Names.TryGetValue(n, out var s) ? $"errno {n}, {s}" : $"errno {n}";

    [DllImport("libc", SetLastError = true)] private static extern int open(string path, int flags, int mode);
    [DllImport("libc")] private static extern int close(int fd);

    /// <summary>Creates <paramref name="path"/> exclusively (and removes it again) to learn the errno a creation meets there.</summary>
    private static int? ProbeCreate(string path)
    {
        const int O_WRONLY = 1, O_CREAT = 0x40, O_EXCL = 0x80;
        var probe = path + ".probe";
        int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, Convert.ToInt32("600", 8));
        if (fd >= 0)
        {
            close(fd);
            try { File.Delete(probe); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            return null;
        }
        return Marshal.GetLastPInvokeError();
    }
}
