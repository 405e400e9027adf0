using System.Diagnostics;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// A real small file system: a tmpfs of a few MiB mounted on a temporary folder (needs root / CAP_SYS_ADMIN),
/// unmounted on Dispose. <see cref="Fill"/> writes a filler file until the kernel answers ENOSPC.
/// </summary>
internal sealed class SmallDisk : IDisposable
{
    public string Dir { get; }
    private readonly bool _keepFolder;

    /// <param name="mib">The size in MiB.</param>
    /// <param name="at">An existing folder to mount it on (e.g. a run's checkpoints/); a new temporary one when null.</param>
    public SmallDisk(int mib, string? at = null)
    {
        Dir = at ?? Directory.CreateTempSubdirectory("ect-smalldisk-").FullName;
        _keepFolder = at is not null;
        var (code, text) = Sh("mount", "-t", "tmpfs", "-o", $"size={mib}m", "tmpfs", Dir);
        code.Should().Be(0, $"mount of a tmpfs on {Dir} ({text})");
    }

    /// <summary>Whether this process may mount a tmpfs (checked once, at test discovery).</summary>
    public static readonly Lazy<string?> Unavailable = new(() =>
    {
        if (!OperatingSystem.IsLinux()) return "tmpfs mounts need Linux";
        try
        {
            using var probe = new SmallDisk(1);
            return null;
        }
        catch (Exception e) { return $"cannot mount a tmpfs here (needs root): {e.Message}"; }
    });

    /// <summary>Fills the disk: a filler file grows until a write fails with ENOSPC. Returns its path.</summary>
    public string Fill(string name = "filler")
    {
        var path = Path.Combine(Dir, name);
        using var f = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.None, 1);
        var block = new byte[4096];
        try
        {
            while (true) { f.Write(block); f.Flush(); }
        }
        catch (IOException e) when (e.HResult == 28) { }
        // The last bytes: smaller writes until not even one byte fits.
        try { while (true) { f.Write(block, 0, 1); f.Flush(); } }
        catch (IOException e) when (e.HResult == 28) { }
        return path;
    }

    /// <summary>Sets or clears the immutable attribute (chattr +i / -i): even root cannot create files in an immutable folder.</summary>
    public static void Immutable(string path, bool on)
    {
        var (code, text) = Sh("chattr", on ? "+i" : "-i", path);
        code.Should().Be(0, $"chattr on {path} ({text})");
    }

    public static (int Code, string Output) Sh(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var text = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, text);
    }

    public void Dispose()
    {
        // Whatever a test made immutable would block its own clean-up; the unmount drops it all.
        var (code, text) = Sh("umount", "-l", Dir);
        if (code == 0) { if (!_keepFolder) try { Directory.Delete(Dir); } catch (IOException) { } }
        else Console.Error.WriteLine($"umount {Dir}: {text}");
    }
}

/// <summary>A Fact that reports "skipped", with the reason, where a tmpfs cannot be mounted (not root, not Linux).</summary>
public sealed class SmallDiskFactAttribute : FactAttribute
{
    public SmallDiskFactAttribute()
    {
        if (SmallDisk.Unavailable.Value is { } why) Skip = why;
    }
}

/// <summary>A Theory that reports "skipped", with the reason, where a tmpfs cannot be mounted (not root, not Linux).</summary>
public sealed class SmallDiskTheoryAttribute : TheoryAttribute
{
    public SmallDiskTheoryAttribute()
    {
        if (SmallDisk.Unavailable.Value is { } why) Skip = why;
    }
}
