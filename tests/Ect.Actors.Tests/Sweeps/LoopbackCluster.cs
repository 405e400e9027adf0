using System.Diagnostics;
using Ect.Actors.Cluster;
using Ect.Actors.Tests.Control;
using Ect.Actors.Tests.Postgres;
using Ect.Actors.Tests.RunTests;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// The start-up the cluster process tests share: a fresh PostgreSQL database (<see cref="ClusterDatabase"/>), a temporary
/// folder with its run root, N `ect node` processes on free loopback ports that seed each other, waited on until each
/// says it is up; `ect` CLI calls and in-process clients against them; everything stopped and dropped at the end.
/// </summary>
internal sealed class LoopbackCluster : IAsyncDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly string[] _nodeArgs;
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public ClusterDatabase Db { get; }
    /// <summary>The test's temporary folder (specs, reference runs); the run root is <see cref="Root"/> inside it.</summary>
    public string Dir { get; }
    public string Root { get; }
    public int[] Ports { get; }
    /// <summary>Every node process started, the restarted ones included (all are disposed at the end).</summary>
    public List<SweepNodeProcess> Nodes { get; } = [];
    public string TokenFile => ClusterToken.PathIn(Root);
    public TimeSpan Elapsed => _clock.Elapsed;

    private LoopbackCluster(ITestOutputHelper output, ClusterDatabase db, string dir, int[] ports, string[] nodeArgs)
    {
        _output = output;
        Db = db;
        Dir = dir;
        Root = Path.Combine(dir, "runs");
        Ports = ports;
        _nodeArgs = nodeArgs;
    }

    /// <summary>
    /// Starts <paramref name="nodes"/> nodes of one slot each (extra `ect node` arguments: <paramref name="nodeArgs"/>)
    /// and waits until every one is up (90 s each).
    /// </summary>
    public static async Task<LoopbackCluster> StartAsync(PostgresFixture pg, ITestOutputHelper output, string prefix, int nodes, params string[] nodeArgs)
    {
        var db = await ClusterDatabase.CreateAsync(pg.ConnectionString);
        var dir = Directory.CreateTempSubdirectory(prefix).FullName;
        var ports = Enumerable.Range(0, nodes).Select(_ => ControlRemotingTests.FreePort()).ToArray();
        var cluster = new LoopbackCluster(output, db, dir, ports, nodeArgs);
        try
        {
            foreach (var p in ports) cluster.Start(p);
            foreach (var n in cluster.Nodes) await n.WaitForLine(@": up; 1 slot", TimeSpan.FromSeconds(90));
            output.WriteLine($"cluster of {nodes} up after {cluster.Elapsed.TotalSeconds:F1} s");
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts a node on <paramref name="port"/> (a new one, or a killed node's again), seeded by all <see cref="Ports"/>; does not wait.</summary>
    public SweepNodeProcess Start(int port)
    {
        var node = SweepNodeProcess.Start(_output, port, Ports, Root, Db.ConnectionString, 1, _nodeArgs);
        Nodes.Add(node);
        return node;
    }

    /// <summary>"127.0.0.1:P1,127.0.0.1:P2,..." of <paramref name="nodes"/> (default: the first start's nodes).</summary>
    public string Addresses(IEnumerable<SweepNodeProcess>? nodes = null) =>
        string.Join(",", (nodes ?? Nodes.Take(Ports.Length)).Select(n => $"127.0.0.1:{n.Port}"));

    /// <summary>An in-process client of <paramref name="nodes"/> with the run root's token (and, unless told otherwise, its certificate).</summary>
    public SweepClient Client(IEnumerable<SweepNodeProcess>? nodes = null, ClusterTls? tls = null) =>
        SweepClient.Connect(Addresses(nodes), tls ?? new ClusterTls(null, "", []), TokenFile);

    /// <summary>An `ect` command (90 s at most): its exit code and its standard output and error together.</summary>
    public static async Task<(int Code, string Text)> Ect(params string[] args)
    {
        var (code, o, e, _) = await EctProcess.RunAsync(TimeSpan.FromSeconds(90), args);
        return (code, o + e);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var n in Nodes) n.Dispose();
        await Db.DisposeAsync();
    }
}
