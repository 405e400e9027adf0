using Akka.Actor;
using Ect.Actors.Cluster.Wire;
using Ect.Actors.Sweeps;

namespace Ect.Actors.Cluster;

/// <summary>
/// `ect sweep submit|status|cancel|results --cluster HOST:PORT[,...]`: a short-lived ActorSystem with plain remoting
/// (not a cluster member: a CLI that came and went would churn membership and the split-brain resolver's view) that
/// asks /user/sweeps (<see cref="SweepReceptionist"/>) on the first node that answers.
/// </summary>
public sealed class SweepClient : IAsyncDisposable
{
    private readonly ActorSystem _system;
    private readonly IReadOnlyList<string> _nodes;

    private readonly bool _tls;
    private readonly string _token;

    private SweepClient(ActorSystem system, IReadOnlyList<string> nodes, bool tls, string token) { _system = system; _nodes = nodes; _tls = tls; _token = token; }

    /// <summary>
    /// Throws ArgumentException on a bad --cluster list, TLS option or certificate, IOException on a token file that cannot
    /// be read. <paramref name="tokenFile"/>: the nodes' RUN_ROOT/cluster.token; the cluster's certificate is the
    /// cluster.pfx beside it unless <paramref name="tls"/> names another or is <see cref="ClusterTls.Insecure"/>.
    /// </summary>
    public static SweepClient Connect(string cluster, ClusterTls tls, string? tokenFile, string? hostname = null)
    {
        if (tokenFile is not { Length: > 0 })
            throw new ArgumentException($"--token-file is missing: give the cluster's token file, RUN_ROOT/{ClusterToken.FileName} (the first `ect node` writes it in its --run-root).");
        var token = ClusterToken.Read(tokenFile);
        var nodes = cluster.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (nodes.Length == 0) throw new ArgumentException("--cluster is empty: give HOST:PORT of a node.");
        foreach (var n in nodes) ClusterHocon.ParseHostPort(n, "--cluster");
        hostname ??= ClusterHocon.ClientHostname(nodes);
        tls.CheckAddress(hostname);
        tls = tls.ForClient(tokenFile);
        var config = ClusterHocon.Client(hostname, tls.Hocon(hostname));
        return new SweepClient(ActorSystem.Create("ect-sweep-client", tls.Setup(config)), nodes, tls.Enabled, token);
    }

    /// <summary>The first answer of a node of the cluster, or throws TimeoutException naming every node tried.</summary>
    public async Task<T> AskAsync<T>(object message, TimeSpan timeout)
    {
        var errors = new List<string>();
        foreach (var node in _nodes)
        {
            var (host, port) = ClusterHocon.ParseHostPort(node, "--cluster");
            var selection = _system.ActorSelection($"{ClusterHocon.Protocol(_tls)}://{ClusterHocon.SystemName}@{host}:{port}/user/{SweepReceptionist.Name}");
            try { return await selection.Ask<T>(message, timeout); }
            catch (Exception e) when (e is AskTimeoutException or TaskCanceledException) { errors.Add($"{node}: no answer within {timeout.TotalSeconds:F0} s"); }
        }
        var self = ((ExtendedActorSystem)_system).Provider.DefaultAddress;
        throw new TimeoutException($"no node of the cluster answered ({string.Join("; ", errors)}): is `ect node` running there, with the same TLS settings " +
                                   $"(its RUN_ROOT/cluster.pfx, or --insecure-no-tls on both sides), and can it connect back to this client at {self.Host}:{self.Port} (nodes answer over a connection of their own)?");
    }

    public Task<SweepReply> Submit(SweepSpec spec) => AskAsync<SweepReply>(new SubmitSweep { Sweep = ToSubmitted(spec), Token = _token }, TimeSpan.FromSeconds(30));

    public Task<SweepStatusReply> Status(string name) => AskAsync<SweepStatusReply>(new SweepStatusQuery { Name = name, Token = _token }, TimeSpan.FromSeconds(30));

    public Task<SweepReply> Cancel(string name) => AskAsync<SweepReply>(new CancelSweep { Name = name, Token = _token }, TimeSpan.FromSeconds(30));

    /// <summary>`ect ctl --run RUN --cluster`: the command reaches the run's trainer wherever it lives (see <see cref="RunControlRelay"/>).</summary>
    public async Task<Control.RunCommandReply> Control(string runId, Control.RunCommand command, TimeSpan timeout) =>
        RunControlRelay.Decode(await AskAsync<RunControlReply>(RunControlRelay.Request(_token, runId, command), timeout));

    /// <summary>The sweep as the director records it: every run's id, --config files and --set lines, resolved here.</summary>
    public static SweepSubmitted ToSubmitted(SweepSpec spec)
    {
        var s = new SweepSubmitted { Name = spec.Name, SpecPath = spec.SpecPath, Metric = spec.Metric, SubmittedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() };
        foreach (var r in spec.Runs)
        {
            var run = new RunSpec { RunId = r.Id };
            run.Configs.AddRange(spec.BaseFiles);
            run.Sets.AddRange(spec.SetsOf(r));
            s.Runs.Add(run);
        }
        return s;
    }

    public async ValueTask DisposeAsync() => await _system.Terminate().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
}
