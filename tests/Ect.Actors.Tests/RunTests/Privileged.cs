using System.Diagnostics;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// File-system states a test can only make as root: immutable files (`chattr +i`) and read-only or full mounts
/// (tmpfs). Probed once; where the machine cannot make them the tests that need them are skipped, saying why.
/// </summary>
internal static class Privileged
{
    public static readonly bool CanChattr = Probe(dir =>
    {
        var f = Path.Combine(dir, "f");
        File.WriteAllText(f, "x");
        if (!Run("chattr", "+i", f)) return false;
        Run("chattr", "-i", f);
        return true;
    });

    public static readonly bool CanMount = Probe(dir =>
    {
        if (!Run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir)) return false;
        Run("umount", dir);
        return true;
    });

    public static void Immutable(string path, bool on)
    {
        if (!Run("chattr", on ? "+i" : "-i", path)) throw new InvalidOperationException($"chattr {(on ? "+i" : "-i")} {path} failed");
    }

    /// <summary>Mounts a tmpfs of <paramref name="size"/> (e.g. "2m") on <paramref name="dir"/>; read-only when asked.</summary>
    public static void MountTmpfs(string dir, string size, bool readOnly = false)
    {
        if (!Run("mount", "-t", "tmpfs", "-o", $"size={size}", "tmpfs", dir)) throw new InvalidOperationException($"mount tmpfs on {dir} failed");
        if (readOnly && !Run("mount", "-o", "remount,ro", dir)) throw new InvalidOperationException($"remount ro {dir} failed");
    }

    public static void Unmount(string dir) => Run("umount", dir);

    private static bool Probe(Func<string, bool> probe)
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root") return false;
        var dir = Directory.CreateTempSubdirectory("ect-priv-").FullName;
        try { return probe(dir); }
        catch (Exception) { return false; }
        finally { try { Directory.Delete(dir, true); } catch (Exception) { } }
    }

    private static bool Run(string file, params string[] args)
    {
        try
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            p.WaitForExit(30_000);
            return p.HasExited && p.ExitCode == 0;
        }
        catch (Exception) { return false; }
    }
}

/// <summary>A fact that needs `chattr +i` (root on a file system with attributes).</summary>
public sealed class ChattrFactAttribute : FactAttribute
{
    public ChattrFactAttribute() { if (!Privileged.CanChattr) Skip = "needs root and `chattr +i` (immutable files)"; }
}

/// <summary>A fact that needs to mount a tmpfs (root with CAP_SYS_ADMIN).</summary>
public sealed class MountFactAttribute : FactAttribute
{
    public MountFactAttribute() { if (!Privileged.CanMount) Skip = "needs root that may mount a tmpfs"; }
}
