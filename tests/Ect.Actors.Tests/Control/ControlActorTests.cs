using Akka.Actor;
using Akka.TestKit.Xunit2;
using Ect.Actors.Control;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Control;

/// <summary>The control actor in-process (no remoting): token check and the coordinator's silence.</summary>
public sealed class ControlActorTests : TestKit
{
    private const string Token = "feedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface";

    [Fact]
    public void A_silent_coordinator_gets_the_caller_a_reply_naming_the_problem()
    {
        var coordinator = CreateTestProbe();
        var control = Sys.ActorOf(ControlActor.Props(coordinator.Ref, Token, TimeSpan.FromMilliseconds(300)));
        control.Tell(new ControlRequest(Token, new RequestCheckpoint("ck-1")), TestActor);

        coordinator.ExpectMsg<RequestCheckpoint>().IdempotencyKey.Should().Be("ck-1");
        var reply = ExpectMsg<RunCommandReply>(TimeSpan.FromSeconds(5));
        reply.Accepted.Should().BeFalse();
        reply.IdempotencyKey.Should().Be("ck-1");
        reply.Message.Should().Contain("did not answer within 0.3 s");
    }

    [Theory]
    [InlineData("")]
    [InlineData("feedface")]
    [InlineData("FEEDFACEFEEDFACEFEEDFACEFEEDFACEFEEDFACEFEEDFACEFEEDFACEFEEDFACE")]
    public void Tokens_that_differ_in_length_or_case_are_refused(string token)
    {
        var coordinator = CreateTestProbe();
        var control = Sys.ActorOf(ControlActor.Props(coordinator.Ref, Token));
        control.Tell(new ControlRequest(token, new StopRun("stop-1")), TestActor);
        ExpectMsg<RunCommandReply>().Should().Be(new RunCommandReply("stop-1", false, ControlActor.RefusedMessage, null));
        coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void An_empty_daemon_token_is_rejected_at_construction()
    {
        var act = () => ControlActor.Props(ActorRefs.Nobody, "");
        act.Should().Throw<ArgumentException>().WithMessage("*token may not be empty*");
    }
}
