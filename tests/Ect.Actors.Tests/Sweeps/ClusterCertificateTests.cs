using Ect.Actors.Cluster;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// Issue 19: RUN_ROOT/cluster.pfx, the default certificate of a sweep cluster (ClusterCertificate), and how nodes and
/// clients resolve their TLS from it (ClusterTls.ForNode / ForClient), without a cluster.
/// </summary>
public sealed class ClusterCertificateTests
{
    [Fact]
    public async Task Nodes_creating_the_certificate_at_once_all_end_with_the_same_one_readable_by_the_owner_only()
    {
        var root = Directory.CreateTempSubdirectory("ect-cert-").FullName;
        var start = new ManualResetEventSlim();
        var racers = Enumerable.Range(0, 6).Select(_ => Task.Run(() =>
        {
            start.Wait();
            return new ClusterTls(null, "", []).ForNode(root);
        })).ToList();
        start.Set();
        var resolved = await Task.WhenAll(racers);
        resolved.Select(t => t.CertificatePath).Distinct().Should().Equal([ClusterCertificate.PathIn(root)]);
        resolved.Select(t => string.Join(",", t.Pins)).Distinct().Should().ContainSingle("every racer pinned the one certificate that was kept");
        resolved[0].Pins.Single().Should().Be(ClusterCertificate.Thumbprint(ClusterCertificate.PathIn(root), "", "test"));
        File.GetUnixFileMode(ClusterCertificate.PathIn(root)).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Directory.GetFiles(root).Select(Path.GetFileName).Should().Equal([ClusterCertificate.FileName], "no temporary file is left");

        // A client given RUN_ROOT/cluster.token finds the same certificate beside it and pins the same thumbprint.
        var client = new ClusterTls(null, "", []).ForClient(ClusterToken.PathIn(root));
        client.CertificatePath.Should().Be(ClusterCertificate.PathIn(root));
        client.Pins.Should().Equal(resolved[0].Pins);
        client.Hocon("127.0.0.1").Should().Contain("enable-ssl = on").And.Contain("suppress-validation = off");
    }

    [Fact]
    public void A_client_without_a_certificate_beside_its_token_or_with_a_file_that_is_not_one_is_refused_naming_the_file()
    {
        var dir = Directory.CreateTempSubdirectory("ect-cert-").FullName;
        var missing = () => new ClusterTls(null, "", []).ForClient(Path.Combine(dir, ClusterToken.FileName));
        missing.Should().Throw<ArgumentException>().WithMessage($"*{Path.Combine(dir, ClusterCertificate.FileName)}*file not found*--cluster-cert*");
        var junk = Path.Combine(dir, "junk.pfx");
        File.WriteAllText(junk, "not a certificate");
        var bad = () => new ClusterTls(junk, "", []).ForClient(Path.Combine(dir, ClusterToken.FileName));
        bad.Should().Throw<ArgumentException>().WithMessage($"*--cluster-cert {junk}*could not be read*");
    }

    [Fact]
    public void Insecure_is_refused_beyond_loopback_and_beside_a_certificate_and_makes_no_certificate()
    {
        var root = Directory.CreateTempSubdirectory("ect-cert-").FullName;
        var insecure = new ClusterTls(null, "", [], Insecure: true);
        insecure.Invoking(t => t.CheckAddress("10.1.2.3")).Should().Throw<ArgumentException>().WithMessage("*--hostname 10.1.2.3*--insecure-no-tls*mutual TLS*");
        new ClusterTls("x.pfx", "", [], Insecure: true).Invoking(t => t.CheckAddress("127.0.0.1")).Should().Throw<ArgumentException>().WithMessage("*choose one*");
        insecure.CheckAddress("127.0.0.1");
        var node = insecure.ForNode(root);
        node.Enabled.Should().BeFalse();
        node.Hocon("127.0.0.1").Should().Be("enable-ssl = off");
        File.Exists(ClusterCertificate.PathIn(root)).Should().BeFalse();
    }
}
