using System.Diagnostics;
using FluentAssertions;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.Distributed;

/// <summary>`mpirun -np K ect ARGS` on loopback (as root: --allow-run-as-root; --oversubscribe: K may exceed the 2 cores).</summary>
internal static class MpiJob
{
    public static Process Start(int ranks, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo("mpirun") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--allow-run-as-root", "--oversubscribe", "-np", ranks.ToString(), "--mca", "btl", "self,vader",
                     "dotnet", RunTests.EctProcess.EctDll }.Concat(args)) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    public static async Task<(int Code, string Out, string Err)> RunToEnd(ITestOutputHelper output, int ranks, IEnumerable<string> args, TimeSpan? limit = null)
    {
        using var p = Start(ranks, args);
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        try { await p.WaitForExitAsync().WaitAsync(limit ?? TimeSpan.FromSeconds(180)); }
        catch (TimeoutException)
        {
            p.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException($"mpirun -np {ranks} ect {string.Join(' ', args)} still ran after {limit}:\n{await o}\n{await e}");
        }
        var (so, se) = (await o, await e);
        output.WriteLine($"mpirun -np {ranks} exit {p.ExitCode}\n{Tail(so)}\n{Tail(se)}");
        return (p.ExitCode, so, se);
    }

    private static string Tail(string s) => s.Length > 3000 ? s[^3000..] : s;

    /// <summary>The ranks (mpirun's child processes) of a running job.</summary>
    /// <remarks>A process can end between any two reads of /proc: its files then vanish (IOException), which means no
    /// children here and not alive below, never an exception in the test.</remarks>
    public static IReadOnlyList<int> Children(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/task/{pid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToList(); }
        catch (IOException) { return []; }
    }

    public static bool Alive(int pid)
    {
        try { return !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z "); }
        catch (IOException) { return false; }
    }

    /// <summary>"weights sha256 X, ema sha256 Y" of rank 0's last line and of each worker's "rank R: ..." line.</summary>
    public static (string Weights, string Ema) Digests(string text, string prefix)
    {
        var m = System.Text.RegularExpressions.Regex.Matches(text, System.Text.RegularExpressions.Regex.Escape(prefix) + @"[^\n]*?weights sha256 ([0-9a-f]{64}), ema sha256 ([0-9a-f]{64})");
        m.Should().NotBeEmpty($"the output has a '{prefix} ... weights sha256' line:\n{text}");
        return (m[^1].Groups[1].Value, m[^1].Groups[2].Value);
    }
}
