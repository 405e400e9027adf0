using Akka.Configuration;
using Ect.Actors.Control;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Control;

public sealed class ControlEndpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-ctl-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Config Ect(string control) => ConfigurationFactory.ParseString("ect.control { " + control + " }");

    [Fact]
    public void Loopback_config_turns_on_untrusted_remoting_with_only_control_trusted()
    {
        var c = ControlEndpoint.Configure(Ect("hostname = \"127.0.0.1\", port = 0"), _dir);
        c.GetString("akka.actor.provider").Should().Be("remote");
        c.GetBoolean("akka.remote.untrusted-mode").Should().BeTrue();
        c.GetStringList("akka.remote.trusted-selection-paths").Should().Equal("/user/control");
        c.GetString("akka.remote.dot-netty.tcp.hostname").Should().Be("127.0.0.1");
        c.GetInt("akka.remote.dot-netty.tcp.port").Should().Be(0);
        c.GetBoolean("akka.remote.dot-netty.tcp.enable-ssl").Should().BeFalse();
        c.GetString("akka.actor.serialization-bindings.\"Ect.Actors.Control.RunCommand, ect\"").Should().Be("ect-control");
    }

    [Fact]
    public void The_ect_subtree_works_as_well_as_the_whole_config()
    {
        var c = ControlEndpoint.Configure(ConfigurationFactory.ParseString("control { hostname = \"::1\", port = 4567 }"), _dir);
        c.GetString("akka.remote.dot-netty.tcp.hostname").Should().Be("::1");
        c.GetInt("akka.remote.dot-netty.tcp.port").Should().Be(4567);
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("192.168.1.20")]
    [InlineData("myhost.example")]
    public void Non_loopback_without_tls_is_an_error(string host)
    {
        var act = () => ControlEndpoint.Configure(Ect($"hostname = \"{host}\""), _dir);
        act.Should().Throw<ControlException>().WithMessage($"*{host}*{ControlEndpoint.NonLoopbackWithoutTlsError}*");
    }

    [Fact]
    public void Non_loopback_with_tls_but_no_pins_is_an_error()
    {
        var act = () => ControlEndpoint.Configure(
            Ect("hostname = \"0.0.0.0\", tls { enabled = on, certificate-path = \"c.pfx\", pinned-thumbprints = [] }"), _dir);
        act.Should().Throw<ControlException>().WithMessage($"*{ControlEndpoint.NonLoopbackWithoutTlsError}*");
    }

    [Fact]
    public void Non_loopback_with_pinned_tls_turns_on_ssl()
    {
        var c = ControlEndpoint.Configure(
            Ect("hostname = \"0.0.0.0\", tls { enabled = on, certificate-path = \"c.pfx\", certificate-password = \"pw\", pinned-thumbprints = [\"aa:bb\"] }"), _dir);
        c.GetBoolean("akka.remote.dot-netty.tcp.enable-ssl").Should().BeTrue();
        c.GetString("akka.remote.dot-netty.tcp.ssl.certificate.path").Should().Be(Path.Combine(_dir, "c.pfx"));
        c.GetBoolean("akka.remote.dot-netty.tcp.ssl.suppress-validation").Should().BeFalse();
        ControlSettings.From(Ect("tls.pinned-thumbprints = [\"aa:bb\"]")).PinnedThumbprints.Should().Equal("AABB");
    }

    [Fact]
    public void Token_is_created_once_with_mode_0600_and_reused()
    {
        var token = ControlEndpoint.EnsureToken(ConfigurationFactory.Empty, _dir);
        token.Should().MatchRegex("^[0-9a-f]{64}$");
        var path = Path.Combine(_dir, "control.token");
        if (!OperatingSystem.IsWindows())
            File.GetUnixFileMode(path).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        ControlEndpoint.EnsureToken(ConfigurationFactory.Empty, _dir).Should().Be(token);

        var other = Directory.CreateTempSubdirectory("ect-ctl-").FullName;
        try { ControlEndpoint.EnsureToken(ConfigurationFactory.Empty, other).Should().NotBe(token); }
        finally { Directory.Delete(other, true); }
    }

    [Fact]
    public void Address_file_round_trips_and_a_missing_one_says_what_to_do()
    {
        var a = new ControlAddress("akka.tcp", "ect", "127.0.0.1", 40123, "/user/control");
        ControlAddressFile.Write(_dir, a);
        ControlAddressFile.Read(_dir).Should().Be(a);

        var empty = Path.Combine(_dir, "none");
        var act = () => ControlAddressFile.Read(empty);
        act.Should().Throw<ControlException>().WithMessage("*control.json*does not exist*ect train*");
    }
}
