using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;
using Akka.Actor;
using Akka.Configuration;
using Ect.Actors.Cluster;
using Ect.Actors.Persistence;
using Ect.Actors.Tests.Postgres;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// Issue 19, point 1, the default: an `ect node` given no TLS option still runs mutual TLS with pinning, on the
/// RUN_ROOT/cluster.pfx the first node made (0600). A bare Akka ActorSystem with Akka.Cluster, the cluster's system
/// name and the node as seed (what a local intruder needs to join a cluster without TLS) never becomes a member, with
/// plain TCP or with TLS and a certificate of its own; the same bare system given the run root's certificate joins.
/// Membership is read from the node's own log (MembershipLog prints every member event it sees).
/// </summary>
[Trait("Category", "Slow")] // 27-36 s measured on the loaded 2-core machine (70 s once, with other cluster tests in parallel): a node, two intruders that wait 12 s, a member
public sealed class ClusterMembershipTlsTests(PostgresFixture pg, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    /// <summary>A bare cluster member on a free loopback port: the node as its only seed, nothing of ect's but the system name.</summary>
    private static ActorSystem Bare(string seed, string tlsLines, Akka.Actor.Setup.ActorSystemSetup? setup = null)
    {
        var config = ConfigurationFactory.ParseString($$"""
            akka {
              loglevel = WARNING
              stdout-loglevel = WARNING
              actor.provider = cluster
              remote.dot-netty.tcp {
                hostname = "127.0.0.1"
                port = 0
                {{tlsLines}}
              }
              cluster.seed-nodes = [ {{PersistenceHocon.Quote(seed)}} ]
            }
            """);
        return setup is null
            ? ActorSystem.Create(ClusterHocon.SystemName, config)
            : ActorSystem.Create(ClusterHocon.SystemName, setup.WithSetup(Akka.Actor.BootstrapSetup.Create().WithConfig(config)));
    }

    private static int MembersUp(ActorSystem s) => Akka.Cluster.Cluster.Get(s).State.Members.Count(m => m.Status == Akka.Cluster.MemberStatus.Up);

    [Fact]
    public async Task By_default_a_node_runs_mutual_TLS_on_the_run_roots_certificate_so_a_bare_Akka_system_without_it_never_joins_and_one_with_it_does()
    {
        await using var c = await LoopbackCluster.StartAsync(pg, output, "ect-cluster-mtls-", 1);
        var node = c.Nodes.Single();
        var pfx = ClusterCertificate.PathIn(c.Root);
        File.Exists(pfx).Should().BeTrue("the first node makes RUN_ROOT/cluster.pfx");
        File.GetUnixFileMode(pfx).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var self = $"akka.ssl.tcp://{ClusterHocon.SystemName}@127.0.0.1:{node.Port}";
        node.Lines.Should().Contain(l => l.Contains($"node {self}: joining") && l.Contains($"mutual TLS, certificate {pfx}"));
        await node.WaitForLine(Regex.Escape($"member {self} up (") + @"\d+ members\)", TimeSpan.FromSeconds(10));

        // Intruder 1: plain akka.tcp to the node's port. Intruder 2: TLS with a certificate of its own that trusts any peer.
        var rogueDir = Directory.CreateTempSubdirectory("ect-rogue-").FullName;
        var roguePfx = Path.Combine(rogueDir, "rogue.pfx");
        File.WriteAllBytes(roguePfx, ClusterCertificate.Generate());
        var plain = Bare($"akka.tcp://{ClusterHocon.SystemName}@127.0.0.1:{node.Port}", "enable-ssl = off");
        var rogue = Bare(self, $$"""
            enable-ssl = on
            ssl {
              suppress-validation = on
              certificate { path = {{PersistenceHocon.Quote(roguePfx)}}, password = "", flags = [ "exportable" ] }
            }
            """);
        var intruders = new[] { plain, rogue };
        try
        {
            var addresses = intruders.Select(s => ((ExtendedActorSystem)s).Provider.DefaultAddress.ToString()).ToList();
            output.WriteLine($"intruders: {string.Join(", ", addresses)}");
            addresses.Should().OnlyContain(a => Regex.IsMatch(a, @":\d+$"), "each intruder is bound to a port (the node's log is searched for it)");
            await Task.Delay(TimeSpan.FromSeconds(12)); // InitJoin is retried every few seconds: several attempts each
            foreach (var (s, a) in intruders.Zip(addresses))
            {
                MembersUp(s).Should().Be(0, $"{a} never became a member (its own view)");
                node.Lines.Should().NotContain(l => l.Contains($"member {a} ") || l.Contains($"member {a.Replace("akka.tcp", "akka.ssl.tcp")} "),
                    $"the node never saw {a} as a member");
            }
        }
        finally { foreach (var s in intruders) await s.Terminate(); }

        // The control: the same bare system, given the run root's certificate (as a client finds it beside the token), joins.
        var tls = new ClusterTls(null, "", []).ForClient(c.TokenFile);
        tls.Enabled.Should().BeTrue();
        var member = Bare(self, tls.Hocon("127.0.0.1"), tls.Setup(ConfigurationFactory.Empty));
        try
        {
            var address = ((ExtendedActorSystem)member).Provider.DefaultAddress.ToString();
            await node.WaitForLine(Regex.Escape($"member {address} up (") + @"\d+ members\)", TimeSpan.FromSeconds(30));
            node.Process.HasExited.Should().BeFalse();
            // Leave, best effort (the node is killed when the test ends; its leaving/exiting lines came 1-40 s later on
            // the loaded machine, so they are not waited for).
            Akka.Cluster.Cluster.Get(member).Leave(Akka.Cluster.Cluster.Get(member).SelfAddress);
        }
        finally { await member.Terminate(); }
        output.WriteLine($"done after {c.Elapsed.TotalSeconds:F1} s");
    }
}
