using Akka.Actor;
using Akka.Serialization;
using Akka.TestKit.Xunit2;
using Ect.Actors.Control;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Control;

public sealed class ControlSerializerTests : TestKit
{
    public ControlSerializerTests() : base(ControlEndpoint.SerializationConfig) { }

    public static TheoryData<object> Messages() => new()
    {
        new GetStatus("k1"), new PauseRun("k2"), new ResumeRun("k3"), new RequestCheckpoint("k4"),
        new RequestEvaluation("k5"), new StopRun("k6"), new SetStage("k7", 3),
        new SetConfigValue("k8", "ect.training.lr", "1e-4"),
        new ControlRequest("secret", new SetStage("k9", -1)),
        new RunCommandReply("k10", true, "ok", new RunStatus("r", "training", 10, 0.64, 1, true, null, 12.5, null)),
        new RunCommandReply("k11", false, "unknown key", null),
        // A data-parallel run's status carries its number of ranks (issue 20).
        new RunCommandReply("k12", true, "", new RunStatus("r", "tuning", 7, 0.1, 0, false, 1.5, 3.0, "checkpoints/ckpt-000000006.ckpt", WorldSize: 4)),
        // The device the run trains on (issue 18).
        new RunCommandReply("k13", true, "", new RunStatus("r", "tuning", 7, 0.1, 0, false, 1.5, 3.0, null, Device: "cuda:0, libtorch cuda build")),
    };

    [Theory]
    [MemberData(nameof(Messages))]
    public void Round_trips_through_the_bound_protobuf_serializer(object message)
    {
        var serialization = Sys.Serialization;
        var serializer = serialization.FindSerializerFor(message);
        serializer.Should().BeOfType<ControlSerializer>("HOCON binds the control messages to the protobuf serializer");
        var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, message);
        manifest.Should().StartWith("ctl-").And.NotContain("Ect.", "no CLR type names go over the wire");

        var bytes = serializer.ToBinary(message);
        var back = serialization.Deserialize(bytes, serializer.Identifier, manifest);
        back.Should().Be(message);
    }

    [Fact]
    public void Unknown_manifest_is_rejected_with_a_clear_error()
    {
        var serializer = (SerializerWithStringManifest)Sys.Serialization.FindSerializerFor(new GetStatus("x"));
        var act = () => serializer.FromBinary([], "System.Diagnostics.Process, System");
        act.Should().Throw<System.Runtime.Serialization.SerializationException>().WithMessage("*unknown manifest*");
    }

    [Fact]
    public void Token_is_not_printed_by_ToString()
    {
        new ControlRequest("supersecret", new GetStatus("k")).ToString().Should().NotContain("supersecret");
    }
}
