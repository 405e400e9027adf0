using System.Diagnostics;
using System.Text.RegularExpressions;
using Ect.Actors.Tests.Postgres;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// A node SIGKILLed and started again on its address, over and over: after each return, every member must hear every
/// other (no "unreachable" between live nodes), and the split-brain resolver must never down a live node. Written to
/// chase a clean-clone CI failure of ClusterSweepTests (2026-12-03: a returned node and a survivor stopped hearing
/// each other and the resolver downed both). Measured 2026-12-03 (10 rounds each, the 3 s resolver wait, one core
/// busy with a trainer): at once 0 of 10 rounds and after removal 0 of 10 showed trouble between live nodes; the
/// returned node was up 13-15 s (at once: Akka first downs its old incarnation) or 3-10 s after its start.
/// The third case adds a sweep training on every node and the shipped 20 s resolver wait, as in ClusterSweepTests. The
/// CI failures were a crossing of connections that Akka's passive connections allowed (ClusterHocon.Node), found with
/// ClusterSweepTests (1 failure in 4 local runs); these rounds never showed it, with passive connections on too (2 x 8
/// rounds, 2026-12-03): the two connections must meet within one TLS handshake. They stay as a check that restarts
/// under sharding traffic leave every live member reachable.
/// ~20 minutes: `dotnet test tests/Ect.Actors.Tests --filter "FullyQualifiedName~ClusterRestartStressTests"`.
/// </summary>
public sealed class ClusterRestartStressTests(PostgresFixture pg, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    [Theory]
    [Trait("Category", "Slow")]
    [InlineData(10, false, false)]
    [InlineData(10, true, false)]
    [InlineData(8, false, true)]
    public async Task Nodes_killed_and_started_again_on_their_address_leave_every_live_member_reachable(int rounds, bool waitForRemoval, bool sweep)
    {
        // With the sweep, the resolver's shipped 20 s wait, as in ClusterSweepTests (the old incarnation is still a member
        // when the node comes back, and Akka downs it as the new one joins).
        await using var c = await LoopbackCluster.StartAsync(pg, output, "ect-cluster-restart-", 3, sweep ? ["--down-after", "20"] : []);
        var current = c.Nodes.ToList();
        if (sweep)
        {
            // Runs on every node that outlive the test: sharding and the singletons then watch actors on every node, and
            // a survivor reconnects to a killed node's address ~5 s after the kill, about when the node is back.
            var spec = ClusterSweepTests.Spec(c.Dir, "stress-" + Guid.NewGuid().ToString("N")[..6], tuningSteps: 100_000);
            var (code, text) = await LoopbackCluster.Ect("sweep", "submit", spec, "--cluster", c.Addresses(), "--token-file", c.TokenFile);
            code.Should().Be(0, text);
            foreach (var n in current) await n.WaitForLine(@"attempt \d+, ect train pid", TimeSpan.FromSeconds(90));
        }
        for (int round = 0; round < rounds; round++)
        {
            var k = round % current.Count;
            var victim = current[k];
            var survivors = current.Where(n => n != victim).ToList();
            victim.Process.Kill();
            await victim.Process.WaitForExitAsync();
            var gone = $@"member \S+@127\.0\.0\.1:{victim.Port} removed";
            if (waitForRemoval)
                foreach (var s in survivors) await s.WaitForLine(gone, TimeSpan.FromSeconds(60));
            var marks = survivors.Select(s => s.Lines.Count).ToList();
            var clock = Stopwatch.StartNew();
            var returned = c.Start(victim.Port);
            current[k] = returned;
            await returned.WaitForLine(": up; 1 slot", TimeSpan.FromSeconds(90));
            var up = clock.Elapsed;
            // Watch 25 s after its return: long enough for a dead link to be found (10 s pause) and acted on (3 s).
            await Task.Delay(TimeSpan.FromSeconds(25));
            var after = survivors.Select((s, i) => s.Lines.Skip(marks[i]).ToList()).ToList();
            var trouble = after.SelectMany((l, i) => l.Where(x => Regex.IsMatch(x, "unreachable|down \\(|stopped \\(downed")).Select(x => $"{survivors[i].Name}: {x}"))
                .Concat(returned.Lines.Where(x => Regex.IsMatch(x, "unreachable|down \\(|stopped \\(downed")).Select(x => $"{returned.Name}: {x}")).ToList();
            output.WriteLine($"round {round}: killed and restarted :{victim.Port}, up after {up.TotalSeconds:F1} s; {trouble.Count} trouble line(s)");
            foreach (var t in trouble) output.WriteLine("  " + t);
            // Lines about the victim's port are its old incarnation's (unreachable, then downed): expected. The address
            // ends at a space ("member ...@127.0.0.1:PORT down") or a bracket (remoting's "Tried to associate with
            // unreachable remote address [akka.ssl.tcp://...@127.0.0.1:PORT]", a survivor reconnecting during the kill's
            // gap: seen in the slow suite of 2026-12-03, which the old space-only match counted as trouble).
            var aboutVictim = new Regex($@"@127\.0\.0\.1:{victim.Port}(?!\d)");
            trouble.Where(t => !aboutVictim.IsMatch(t)).Should().BeEmpty($"round {round}: live nodes hear each other");
            current.Should().OnlyContain(n => !n.Process.HasExited, $"round {round}: no live node was downed");
        }
    }
}
