using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Ect.Actors.Tests.RunTests;
using Npgsql;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>An `ect node` as a separate process on loopback: its output collected line by line, waited on by pattern.</summary>
internal sealed class SweepNodeProcess : IDisposable
{
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly ITestOutputHelper _output;

    public Process Process { get; }
    public int Port { get; }
    public string Name => $"node :{Port}";

    private SweepNodeProcess(Process p, int port, ITestOutputHelper output)
    {
        Process = p;
        Port = port;
        _output = output;
        p.OutputDataReceived += (_, e) => { if (e.Data is { } l) _lines.Enqueue(l); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is { } l) _lines.Enqueue("! " + l); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
    }

    public static SweepNodeProcess Start(ITestOutputHelper output, int port, IEnumerable<int> seeds, string runRoot, string journal,
        int slots = 1, params string[] extra)
    {
        var args = new List<string> { "node", "--seed-nodes", string.Join(",", seeds.Select(s => $"127.0.0.1:{s}")), "--port", port.ToString(),
            "--slots", slots.ToString(), "--run-root", runRoot, "--journal", journal };
        // Three seconds of unreachability before the split-brain resolver downs a node, unless the test says otherwise.
        if (!extra.Contains("--down-after")) args.AddRange(["--down-after", "3"]);
        args.AddRange(extra);
        return new SweepNodeProcess(EctProcess.Start(args), port, output);
    }

    /// <summary>An `ect node` started some other way (e.g. inside a network namespace), collected the same way.</summary>
    public static SweepNodeProcess Attach(Process p, int port, ITestOutputHelper output) => new(p, port, output);

    public IReadOnlyList<string> Lines => _lines.ToList();

    /// <summary>The first line matching <paramref name="pattern"/> (waits up to <paramref name="timeout"/>).</summary>
    public async Task<Match> WaitForLine(string pattern, TimeSpan timeout)
    {
        var re = new Regex(pattern);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            foreach (var l in _lines) if (re.Match(l) is { Success: true } m) return m;
            if (Process.HasExited) break;
            await Task.Delay(100);
        }
        throw new Xunit.Sdk.XunitException($"{Name}: no line matching /{pattern}/ within {timeout.TotalSeconds} s (exited: {Process.HasExited}):\n{string.Join("\n", _lines.TakeLast(40))}");
    }

    public void Dispose()
    {
        if (!Process.HasExited) { try { Process.Kill(); } catch (InvalidOperationException) { } }
        Process.WaitForExit(10_000);
        _output.WriteLine($"---- {Name} (exit {(Process.HasExited ? Process.ExitCode : -1)})");
        foreach (var l in _lines.Where(l => !l.StartsWith("   at ", StringComparison.Ordinal)).TakeLast(int.TryParse(Environment.GetEnvironmentVariable("ECT_TEST_NODE_LINES"), out var n) ? n : 60)) _output.WriteLine(l.Length > 300 ? l[..300] : l);
        Process.Dispose();
    }
}

/// <summary>A fresh database on the test PostgreSQL server for one cluster (its journal starts empty), dropped afterwards.</summary>
internal sealed class ClusterDatabase : IAsyncDisposable
{
    private readonly string _server;
    public string Name { get; }
    public string ConnectionString { get; }

    private ClusterDatabase(string server, string name)
    {
        _server = server;
        Name = name;
        ConnectionString = new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
    }

    public static async Task<ClusterDatabase> CreateAsync(string server)
    {
        var name = "ect_sweep_" + Guid.NewGuid().ToString("N")[..12];
        await using var c = new NpgsqlConnection(server);
        await c.OpenAsync();
        await using (var cmd = new NpgsqlCommand($"CREATE DATABASE {name}", c)) await cmd.ExecuteNonQueryAsync();
        return new ClusterDatabase(server, name);
    }

    /// <summary>The events (manifest, payload) of one persistence id, in order.</summary>
    public async Task<List<(string Manifest, byte[] Payload)>> Events(string persistenceId)
    {
        await using var c = new NpgsqlConnection(ConnectionString);
        await c.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT manifest, message FROM journal WHERE persistence_id = @p ORDER BY sequence_number", c);
        cmd.Parameters.AddWithValue("p", persistenceId);
        var list = new List<(string, byte[])>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) list.Add((r.GetString(0), (byte[])r[1]));
        return list;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await using var c = new NpgsqlConnection(_server);
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)", c);
            await cmd.ExecuteNonQueryAsync();
        }
        catch (NpgsqlException) { /* best effort */ }
    }
}
