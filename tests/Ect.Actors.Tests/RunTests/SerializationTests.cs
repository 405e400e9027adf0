using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

public class SerializationTests
{
    [Fact]
    public void Events_round_trip_with_versioned_manifests()
    {
        var s = new RunEventSerializer(null!);
        var e = new CheckpointCommitted { Path = "checkpoints/a", Step = 7, Kimg = 0.5, Sha256 = "ab", Phase = "tuning", Stage = 3 };
        s.Manifest(e).Should().Be("CheckpointCommitted.v1");
        RunEventSerializer.Parse(s.ToBinary(e), "CheckpointCommitted.v1").Should().Be(e);
        var act = () => RunEventSerializer.Parse([], "CheckpointCommitted.v9");
        act.Should().Throw<System.Runtime.Serialization.SerializationException>();
    }

    [Fact]
    public void Snapshot_restores_the_same_state()
    {
        var st = new RunState();
        st.Apply(new RunStarted { RunId = "r", ConfigHocon = "ect {}" });
        st.Apply(new CheckpointCommitted { Path = "p", Step = 10, Sha256 = "x" });
        st.Apply(new ConfigChanged { Key = "ect.tuning.lr", Value = "1e-5", Step = 12, IdempotencyKey = "k1" });
        st.Apply(new RunPaused { Step = 13, IdempotencyKey = "k2" });
        var back = RunState.FromSnapshot(RunSnapshot.Parser.ParseFrom(st.ToSnapshot().ToByteArrayHelper()));
        back.ToSnapshot().Should().Be(st.ToSnapshot());
        back.Commands.Keys.Should().BeEquivalentTo("k1", "k2");
        back.Paused.Should().BeTrue();
    }
}

internal static class ProtoExtensions
{
    public static byte[] ToByteArrayHelper(this Google.Protobuf.IMessage m) => Google.Protobuf.MessageExtensions.ToByteArray(m);
}
