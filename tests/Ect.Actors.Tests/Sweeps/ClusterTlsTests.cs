using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Ect.Actors.Cluster;
using Ect.Actors.Cluster.Wire;
using Ect.Actors.Tests.Control;
using Ect.Actors.Tests.Postgres;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// Issue 19, point 1: with TLS on, cluster traffic is trusted only between holders of the cluster's certificate
/// (mutual TLS, pinned thumbprint, the control endpoint's certificate handling). On loopback: a client with the
/// certificate gets answers; a client without it, or with another certificate, gets none; a node without it cannot
/// join (the cluster still has one member).
/// </summary>
[Trait("Category", "Slow")] // ~40 s: a TLS node, three clients and an intruder node
public sealed class ClusterTlsTests(PostgresFixture pg, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    private static X509Certificate2 SelfSigned(string cn)
    {
        using var key = RSA.Create(2048);
        var req = new CertificateRequest($"CN={cn}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pfx, "pw"), "pw", X509KeyStorageFlags.Exportable);
    }

    /// <summary>The node's answer, or null. <paramref name="seconds"/>: 6 for those that must get none; more for a holder
    /// (a node just up answers through the director singleton, which took over 6 s to be found on the loaded machine).</summary>
    private static async Task<SweepStatusReply?> Ask(int port, ClusterTls tls, string root, int seconds = 6)
    {
        await using var client = SweepClient.Connect($"127.0.0.1:{port}", tls, ClusterToken.PathIn(root));
        try { return await client.AskAsync<SweepStatusReply>(new SweepStatusQuery { Name = "nope", Token = ClusterToken.Read(ClusterToken.PathIn(root)) }, TimeSpan.FromSeconds(seconds)); }
        catch (TimeoutException) { return null; }
    }

    [Fact]
    public async Task With_TLS_only_holders_of_the_cluster_certificate_can_talk_to_a_node_or_join_the_cluster()
    {
        await using var db = await ClusterDatabase.CreateAsync(pg.ConnectionString);
        var dir = Directory.CreateTempSubdirectory("ect-cluster-tls-").FullName;
        var root = Path.Combine(dir, "runs");
        var cluster = SelfSigned("ect-cluster");
        var rogue = SelfSigned("rogue");
        var clusterPfx = Path.Combine(dir, "cluster.pfx");
        var roguePfx = Path.Combine(dir, "rogue.pfx");
        File.WriteAllBytes(clusterPfx, cluster.Export(X509ContentType.Pfx, "secret"));
        File.WriteAllBytes(roguePfx, rogue.Export(X509ContentType.Pfx, "secret"));
        var pin = cluster.Thumbprint;
        string[] Tls(string pfx) => ["--tls-certificate", pfx, "--tls-password", "secret", "--tls-pin", pin];

        var port = ControlRemotingTests.FreePort();
        using var node = SweepNodeProcess.Start(output, port, [port], root, db.ConnectionString, 1, Tls(clusterPfx));
        await node.WaitForLine(": up; 1 slot", TimeSpan.FromSeconds(90));

        var holder = await Ask(port, new ClusterTls(clusterPfx, "secret", [pin]), root, seconds: 30);
        holder.Should().NotBeNull("a client with the cluster's certificate is answered");
        holder!.Message.Should().Contain("no sweep named \"nope\"");

        (await Ask(port, new ClusterTls(null, "", [], Insecure: true), root)).Should().BeNull("a client without TLS gets no answer");
        (await Ask(port, new ClusterTls(roguePfx, "secret", [pin]), root)).Should().BeNull("a client with another certificate gets no answer");

        // A node with another certificate (pinning the cluster's) tries to join through the TLS node.
        var roguePort = ControlRemotingTests.FreePort();
        using (var intruder = SweepNodeProcess.Start(output, roguePort, [port], root, db.ConnectionString, 1, "--tls-certificate", roguePfx,
                   "--tls-password", "secret", "--tls-pin", pin))
        {
            await intruder.WaitForLine("joining", TimeSpan.FromSeconds(60));
            await Task.Delay(TimeSpan.FromSeconds(12));
            intruder.Lines.Should().NotContain(l => l.Contains(": up;"), "a node without the cluster's certificate cannot join");
            var after = await Ask(port, new ClusterTls(clusterPfx, "secret", [pin]), root, seconds: 30);
            after.Should().NotBeNull();
            after!.Nodes.Select(n => n.Node).Should().Equal([$"akka.ssl.tcp://{ClusterHocon.SystemName}@127.0.0.1:{port}"], "the cluster has its one member only");
        }
    }
}
