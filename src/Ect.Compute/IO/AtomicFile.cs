using System.Runtime.InteropServices;

namespace Ect.Compute.IO;

/// <summary>
/// The one way ECT.NET replaces a file: a temporary file in the same folder (its name ends in <c>.tmp</c>, so the
/// start-up clean-ups find a leftover), flushed to disk (fsync), renamed over the target, then the folder fsynced so
/// the rename itself survives a power cut. A crash at any instant leaves the old file or the complete new one, and a
/// reader (a viewer, `ect ctl`, a resumed run) never sees half a file.
/// <para>
/// Ect.Data compiles this same file (linked, internal: it does not reference Ect.Compute), so every
/// temp-then-rename in the solution goes through here.
/// </para>
/// </summary>
#if ECT_ATOMICFILE_INTERNAL
internal
#else
public
#endif
static class AtomicFile
{
    /// <summary>Writes <paramref name="path"/> from a stream (a fresh temporary file, fsynced, renamed, folder fsynced).</summary>
    public static void Write(string path, Action<Stream> write)
    {
        var tmp = TempPathFor(path);
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None)) write(fs);
            Commit(tmp, path);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    public static void WriteAllText(string path, string text) =>
        Write(path, fs => fs.Write(new System.Text.UTF8Encoding(false).GetBytes(text)));

    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, fs => fs.Write(bytes));

    public static void WriteAllLines(string path, IEnumerable<string> lines) =>
        Write(path, fs =>
        {
            using var w = new StreamWriter(fs, new System.Text.UTF8Encoding(false), leaveOpen: true);
            foreach (var l in lines) w.WriteLine(l);
        });

    /// <summary>A unique temporary name beside <paramref name="path"/>: <c>.NAME.PID.GUID.tmp</c>.</summary>
    public static string TempPathFor(string path)
    {
        var full = Path.GetFullPath(path);
        return Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
    }

    /// <summary>
    /// Makes a complete temporary file the target: fsync of <paramref name="tmp"/>, rename over <paramref name="path"/>
    /// (<paramref name="overwrite"/> false: an IOException when the target exists), fsync of the folder. For writers
    /// that must produce the temporary file themselves (a library that takes a path, a file moved into place, a
    /// temporary name the caller reports in its errors). The caller deletes <paramref name="tmp"/> if this throws.
    /// </summary>
    public static void Commit(string tmp, string path, bool overwrite = true)
    {
        FsyncFile(tmp);
        File.Move(tmp, path, overwrite);
        FsyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    public static void FsyncFile(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        f.Flush(flushToDisk: true);
    }

    [DllImport("libc", SetLastError = true)] private static extern int open(string path, int flags);
    [DllImport("libc", SetLastError = true)] private static extern int fsync(int fd);
    [DllImport("libc")] private static extern int close(int fd);

    /// <summary>Makes a rename durable (POSIX: the directory entry lives in the directory's data). Best effort elsewhere.</summary>
    public static void FsyncDirectory(string dir)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        int fd = open(dir, 0 /* O_RDONLY */);
        if (fd < 0) return;
        try { fsync(fd); } finally { close(fd); }
    }
}
