using System.Diagnostics;
using Xunit;

namespace Ect.Actors.Tests.Distributed;

/// <summary>
/// Two "machines" on this one: network namespaces A and B joined by a veth pair (10.231.7.1 and 10.231.7.2, a private
/// network that exists only between these two namespaces), each with its own loopback. mpirun runs in A with a hostfile
/// naming both, and starts its daemon (orted) in each through an rsh agent that enters the namespace instead of ssh, so
/// ranks on A and B can talk only over TCP on the veth, as over a wire between machines. Made and removed by the test
/// (root only; <see cref="NetnsFactAttribute"/> skips where namespaces cannot be made).
/// </summary>
internal sealed class TwoHosts : IDisposable
{
    public const string Subnet = "10.231.7.0/24";
    private static int _count;

    public TwoHosts(string dir)
    {
        // Short unique names: veth names are limited to 15 characters.
        var id = $"{Environment.ProcessId % 100000}x{Interlocked.Increment(ref _count)}";
        HostA = $"ect{id}a";
        HostB = $"ect{id}b";
        VethB = $"v{id}b";
        var vethA = $"v{id}a";
        try
        {
            Ip("netns", "add", HostA);
            Ip("netns", "add", HostB);
            Ip("link", "add", vethA, "type", "veth", "peer", "name", VethB);
            Ip("link", "set", vethA, "netns", HostA);
            Ip("link", "set", VethB, "netns", HostB);
            Ip("-n", HostA, "addr", "add", "10.231.7.1/24", "dev", vethA);
            Ip("-n", HostB, "addr", "add", "10.231.7.2/24", "dev", VethB);
            foreach (var (ns, dev) in new[] { (HostA, vethA), (HostB, VethB), (HostA, "lo"), (HostB, "lo") })
                Ip("-n", ns, "link", "set", dev, "up");
        }
        catch
        {
            Dispose();
            throw;
        }
        Hostfile = Path.Combine(dir, "hostfile");
        File.WriteAllText(Hostfile, $"{HostA} slots=1\n{HostB} slots=1\n");
        AgentLog = Path.Combine(dir, "agent.log");
        Agent = Path.Combine(dir, "netns-rsh.sh");
        // Open MPI's rsh launcher runs AGENT HOST COMMAND...; HOST is one of this test's namespaces. Each host's daemon
        // gets a /tmp of its own (TMPDIR, Open MPI's session directory base): the namespaces share one file system and one
        // host name, so both daemons made the same /tmp/ompi.HOST.UID/jf.N at the same moment, and the loser of that race
        // failed the run ("A call to mkdir was unable to create the desired directory ... File exists", CI 2026-12-03).
        // Short paths: PMIx puts Unix sockets there (107 characters at most).
        File.WriteAllText(Agent, $"#!/bin/sh\nhost=\"$1\"; shift\necho \"$host\" >> '{AgentLog}'\n" +
                                 "mkdir -p \"/tmp/$host\"\n" +
                                 "exec ip netns exec \"$host\" env TMPDIR=\"/tmp/$host\" sh -c \"$*\"\n");
        File.SetUnixFileMode(Agent, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    public string HostA { get; }
    public string HostB { get; }
    public string VethB { get; }
    public string Hostfile { get; }
    public string Agent { get; }
    /// <summary>One line per daemon the agent started: the namespace it entered.</summary>
    public string AgentLog { get; }

    public static bool Available { get; } = Probe();

    /// <summary>`ip netns exec A mpirun -np 2 ... dotnet ect.dll ARGS`: one rank per host, TCP only on the veth's subnet.</summary>
    public Process StartMpirun(IEnumerable<string> ectArgs, IEnumerable<string>? mpirunArgs = null)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", HostA, "mpirun", "--allow-run-as-root", "-np", "2", "--hostfile", Hostfile,
                     "--mca", "plm_rsh_agent", Agent,
                     // Every daemon talks to mpirun directly (no routing tree: the namespaces share one host name).
                     "--mca", "routed", "direct",
                     "--mca", "oob_tcp_if_include", Subnet, "--mca", "btl_tcp_if_include", Subnet, "--mca", "btl", "self,tcp" }
                     .Concat(mpirunArgs ?? []).Concat(["dotnet", RunTests.EctProcess.EctDll]).Concat(ectArgs))
            psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    /// <summary>Bytes B has sent over its end of the wire (the veth's counter, read inside B).</summary>
    public long BytesSentByB() => long.Parse(Output("netns", "exec", HostB, "cat", $"/sys/class/net/{VethB}/statistics/tx_bytes").Trim());

    /// <summary>The namespace a process runs in (`ip netns identify PID`), "" for the host's own.</summary>
    public string NamespaceOf(int pid)
    {
        try { return Output("netns", "identify", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)).Trim(); }
        catch (InvalidOperationException) { return ""; } // the process ended meanwhile
    }

    /// <summary>Cuts the wire: B's end of the veth goes down (a network partition; both hosts keep running).</summary>
    public void Cut() => Ip("-n", HostB, "link", "set", VethB, "down");

    public void Dispose()
    {
        // Removing a namespace removes its end of the veth, and with it the pair.
        foreach (var ns in new[] { HostA, HostB })
        {
            try { Ip("netns", "del", ns); } catch (InvalidOperationException) { }
            try { Directory.Delete(Path.Combine("/tmp", ns), recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static void Ip(params string[] args) => Output(args);

    private static string Output(params string[] args)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEnd();
        if (!p.WaitForExit(30_000) || p.ExitCode != 0)
            throw new InvalidOperationException($"ip {string.Join(' ', args)} failed: {e}");
        return o.Result;
    }

    private static bool Probe()
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root") return false;
        var ns = $"ectprobe{Environment.ProcessId}";
        try
        {
            Ip("netns", "add", ns);
            Ip("netns", "del", ns);
            return File.Exists("/usr/bin/mpirun") || File.Exists("/usr/local/bin/mpirun");
        }
        catch (Exception) { return false; }
    }
}

/// <summary>A fact that needs network namespaces and veth pairs (root with CAP_NET_ADMIN) and Open MPI.</summary>
public sealed class NetnsFactAttribute : FactAttribute
{
    public NetnsFactAttribute() { if (!TwoHosts.Available) Skip = "needs root that may make network namespaces (`ip netns add`) and Open MPI's mpirun"; }
}
