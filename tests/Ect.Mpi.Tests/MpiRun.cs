using System.Diagnostics;

namespace Ect.Mpi.Tests;

/// <summary>`mpirun -np N` of a dotnet program (as root it needs --allow-run-as-root; --oversubscribe lets N exceed the cores).</summary>
public static class MpiRun
{
    public static ProcessStartInfo StartInfo(int ranks, string dll, IEnumerable<string> args, IReadOnlyDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo("mpirun") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--allow-run-as-root", "--oversubscribe", "-np", ranks.ToString(), "--mca", "btl", "self,vader",
                     "-x", "DOTNET_gcServer=0" }) psi.ArgumentList.Add(a);
        foreach (var (k, _) in env ?? new Dictionary<string, string>()) { psi.ArgumentList.Add("-x"); psi.ArgumentList.Add(k); }
        psi.ArgumentList.Add("dotnet");
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return psi;
    }

    public static async Task<(int Code, string Out, string Err, TimeSpan Took)> RunAsync(int ranks, string dll, IEnumerable<string> args, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        using var p = Process.Start(StartInfo(ranks, dll, args))!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        try { await p.WaitForExitAsync().WaitAsync(limit); }
        catch (TimeoutException)
        {
            p.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException($"mpirun -np {ranks} {dll} still ran after {limit.TotalSeconds} s:\n{await o}\n{await e}");
        }
        return (p.ExitCode, await o, await e, clock.Elapsed);
    }
}
