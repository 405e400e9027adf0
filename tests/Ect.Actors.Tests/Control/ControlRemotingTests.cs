using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using Ect.Actors.Control;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Control;

/// <summary>
/// A daemon-side ActorSystem (this TestKit's) with remoting on 127.0.0.1 port 0 and /user/control in front of a
/// TestProbe coordinator; a separate client ActorSystem (ControlClient) sends commands over TCP.
/// </summary>
public sealed class ControlRemotingTests : TestKit, IAsyncLifetime
{
    private const string Token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    private static readonly Config DaemonConfig =
        ControlEndpoint.Configure(ConfigurationFactory.Empty, Path.GetTempPath())
            .WithFallback(ConfigurationFactory.ParseString("akka.loglevel = WARNING"));

    private readonly Akka.TestKit.TestProbe _coordinator;
    private readonly ControlAddress _address;
    private readonly List<ControlClient> _clients = [];

    public ControlRemotingTests() : base(DaemonConfig, "ect")
    {
        _coordinator = CreateTestProbe("coordinator");
        Sys.ActorOf(ControlActor.Props(_coordinator.Ref, Token), ControlActor.Name);
        _address = ControlEndpoint.AddressOf(Sys);
    }

    private ControlClient Client(string token = Token, double timeoutSeconds = 10, int attempts = 1)
    {
        var c = ControlClient.Create(_address, token, TimeSpan.FromSeconds(timeoutSeconds), attempts);
        _clients.Add(c);
        return c;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var c in _clients) await c.DisposeAsync();
    }

    [Fact]
    public void Daemon_binds_loopback_on_a_real_port()
    {
        _address.Hostname.Should().Be("127.0.0.1");
        _address.Port.Should().BeGreaterThan(0);
        _address.Protocol.Should().Be("akka.tcp");
        _address.SelectionPath.Should().Be($"akka.tcp://ect@127.0.0.1:{_address.Port}/user/control");
    }

    [Fact]
    public async Task Right_token_is_forwarded_and_the_reply_comes_back()
    {
        var client = Client();
        var status = new RunStatus("run-1", "training", 1234, 5.5, 2, false, 0.125, 31.5, "ckpt-000005.safetensors");
        var pending = client.SendAsync(new GetStatus("key-1"));

        var got = _coordinator.ExpectMsg<GetStatus>(TimeSpan.FromSeconds(15));
        got.IdempotencyKey.Should().Be("key-1");
        _coordinator.Reply(new RunCommandReply("key-1", true, "ok", status));

        var reply = await pending;
        reply.Should().Be(new RunCommandReply("key-1", true, "ok", status));
    }

    [Fact]
    public async Task Commands_with_arguments_arrive_intact()
    {
        var client = Client();
        var p1 = client.SendAsync(new SetConfigValue("k-set", "ect.training.lr", "1e-4"));
        _coordinator.ExpectMsg<SetConfigValue>(TimeSpan.FromSeconds(15)).Should().Be(new SetConfigValue("k-set", "ect.training.lr", "1e-4"));
        _coordinator.Reply(new RunCommandReply("k-set", false, "unknown key ect.training.lr", null));
        (await p1).Should().Be(new RunCommandReply("k-set", false, "unknown key ect.training.lr", null));

        var p2 = client.SendAsync(new SetStage("k-stage", 4));
        _coordinator.ExpectMsg<SetStage>(TimeSpan.FromSeconds(5)).Stage.Should().Be(4);
        _coordinator.Reply(new RunCommandReply("k-stage", true, "stage 4", null));
        (await p2).Accepted.Should().BeTrue();
    }

    [Fact]
    public async Task Wrong_token_is_refused_and_never_reaches_the_coordinator()
    {
        var client = Client(token: Token[..^1] + "0");
        var reply = await client.SendAsync(new StopRun("key-stop"));

        reply.Accepted.Should().BeFalse();
        reply.Message.Should().Be(ControlActor.RefusedMessage);
        reply.IdempotencyKey.Should().Be("key-stop");
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(500));
    }

    [Fact]
    public async Task A_retried_command_reaches_the_coordinator_again_with_the_same_key()
    {
        // First attempt unanswered (the coordinator is "busy"), the client re-sends: same key both times.
        var client = Client(timeoutSeconds: 3, attempts: 3);
        var pending = client.SendAsync(new PauseRun("pause-key-42"));

        var first = _coordinator.ExpectMsg<PauseRun>(TimeSpan.FromSeconds(15));
        var second = _coordinator.ExpectMsg<PauseRun>(TimeSpan.FromSeconds(10));
        first.IdempotencyKey.Should().Be("pause-key-42");
        second.IdempotencyKey.Should().Be("pause-key-42");
        _coordinator.Reply(new RunCommandReply(second.IdempotencyKey, true, "paused", null));

        (await pending).Should().Be(new RunCommandReply("pause-key-42", true, "paused", null));
    }

    [Fact]
    public async Task A_path_outside_the_trusted_selection_paths_is_not_reachable()
    {
        var other = CreateTestProbe("other-target");
        Sys.ActorOf(Props.Create(() => new Forwarder(other.Ref)), "other");
        var client = Client();
        // Prove the association works first, so that silence below is untrusted mode, not a dead connection.
        var warm = client.SendAsync(new GetStatus("warm"));
        _coordinator.ExpectMsg<GetStatus>(TimeSpan.FromSeconds(15));
        _coordinator.Reply(new RunCommandReply("warm", true, "", null));
        await warm;

        var otherAddress = _address with { Path = "/user/other" };
        await using var otherClient = ControlClient.Create(otherAddress, Token, TimeSpan.FromSeconds(1.5), 1);
        var act = () => otherClient.SendAsync(new GetStatus("sneaky"));
        await act.Should().ThrowAsync<ControlException>().WithMessage("No answer from*");
        other.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        _coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public async Task Unreachable_daemon_gives_a_clear_error()
    {
        var dead = new ControlAddress("akka.tcp", "ect", "127.0.0.1", FreePort(), ControlActor.Path);
        await using var client = ControlClient.Create(dead, Token, TimeSpan.FromSeconds(1), 2);
        var act = () => client.SendAsync(new GetStatus("k"));
        (await act.Should().ThrowAsync<ControlException>()).Which.Message.Should()
            .Contain("after 2 attempt(s)").And.Contain(dead.SelectionPath);
    }

    internal static int FreePort()
    {
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        var port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private sealed class Forwarder : ReceiveActor
    {
        public Forwarder(IActorRef target) => ReceiveAny(m => target.Forward(m));
    }
}
