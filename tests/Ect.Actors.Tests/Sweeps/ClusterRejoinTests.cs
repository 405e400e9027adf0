using System.Diagnostics;
using Ect.Actors.Tests.Postgres;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// Issue 19 point 3, "a node that comes back rejoins", for the node Akka treats differently: the FIRST seed node, the
/// one that may start a cluster of its own. SIGKILLed and started again on its old address while the other two still
/// run, it must join their cluster, not form a second one beside it (seen once in ClusterSweepTests on a loaded machine:
/// the node came back "up" but the others never saw it).
/// </summary>
public sealed class ClusterRejoinTests(PostgresFixture pg, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    [Theory]
    [InlineData(false)] // at once: the others still hold its dead incarnation as a member (not yet downed)
    [InlineData(true)]  // after the split-brain resolver downed and removed it
    public async Task A_SIGKILLed_first_seed_started_again_on_its_address_joins_the_running_cluster_not_a_cluster_of_its_own(bool afterRemoval)
    {
        await using var c = await LoopbackCluster.StartAsync(pg, output, "ect-cluster-rejoin-", 3);
        c.Nodes.Count(n => n.Lines.Any(l => l.Contains("founding it"))).Should().Be(1,
            "of three nodes started together exactly one founds the cluster (PostgreSQL's lock), the others join it");
        var first = c.Nodes[0];
        var survivors = c.Nodes.Skip(1).ToList();
        first.Port.Should().Be(c.Ports[0], "node 0 is the first seed of every node's list");
        first.Process.Kill();
        await first.Process.WaitForExitAsync();
        first.Process.ExitCode.Should().Be(137, "the first seed died of the SIGKILL");
        output.WriteLine($"killed the first seed :{first.Port} at {c.Elapsed.TotalSeconds:F1} s");
        var gone = $@"member \S+@127\.0\.0\.1:{first.Port} removed";
        if (afterRemoval)
            foreach (var s in survivors) await s.WaitForLine(gone, TimeSpan.FromSeconds(60));
        var seenBefore = survivors.Select(s => s.Lines.Count).ToList();

        var returned = c.Start(first.Port);
        var clock = Stopwatch.StartNew();
        await returned.WaitForLine(": up; 1 slot", TimeSpan.FromSeconds(90));
        output.WriteLine($"the first seed came back up {clock.Elapsed.TotalSeconds:F1} s after its restart");
        returned.Lines.Should().Contain(l => l.Contains("the cluster is alive: joining it"), "the other two hold the membership lock")
            .And.NotContain(l => l.Contains("founding"), "a node that comes back while the cluster lives must not start another");
        // Its own view holds the other two, and theirs hold it again (a member "up" after the restart).
        await returned.WaitForLine(@"\(3 members\)", TimeSpan.FromSeconds(30));
        foreach (var other in survivors)
            (await returned.WaitForLine($@"member \S+@127\.0\.0\.1:{other.Port} up", TimeSpan.FromSeconds(5))).Success.Should().BeTrue();
        for (int i = 0; i < survivors.Count; i++)
        {
            var rejoin = Stopwatch.StartNew();
            while (!survivors[i].Lines.Skip(seenBefore[i]).Any(l => System.Text.RegularExpressions.Regex.IsMatch(l, $@"member \S+@127\.0\.0\.1:{first.Port} up")) && rejoin.Elapsed < TimeSpan.FromSeconds(30))
                await Task.Delay(200);
            survivors[i].Lines.Skip(seenBefore[i]).Should().Contain(l => System.Text.RegularExpressions.Regex.IsMatch(l, $@"member \S+@127\.0\.0\.1:{first.Port} up"),
                $"{survivors[i].Name} sees the restarted first seed as a member again");
        }
        output.WriteLine($"the others see it as a member {clock.Elapsed.TotalSeconds:F1} s after its restart");
    }
}
