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

    /// <summary>A state in which every field differs from its default (each event type applied at least once).</summary>
    internal static RunState EveryFieldSet()
    {
        var st = new RunState();
        st.Apply(new RunStarted { RunId = "r", ConfigHocon = "ect {}", RunUuid = "0b6f1c9e-2f4a-4e43-9c1d-5d2a7e8f9a01", RunDir = "/runs/r", Host = "h" });
        st.Apply(new PhaseChanged { Phase = "tuning", Step = 5 });
        st.Apply(new CheckpointCommitted { Path = "p", Step = 10, Kimg = 0.32, Sha256 = "x", Phase = "tuning", Stage = 1 });
        st.Apply(new StageAdvanced { Stage = 3, Step = 11, ByUser = true, IdempotencyKey = "k0" });
        st.Apply(new ConfigChanged { Key = "ect.tuning.lr", Value = "1e-5", Step = 12, IdempotencyKey = "k1" });
        st.Apply(new RunPaused { Step = 13, IdempotencyKey = "k2" });
        var ev = new EvaluationRecorded { Evaluator = "sample-grid", Step = 10 };
        ev.Files.Add("samples/a.png");
        st.Apply(ev);
        st.Apply(new RolledBack { FromStep = 17, ToStep = 10, Reason = "nan" });
        st.Apply(new CommandApplied { IdempotencyKey = "k3", Accepted = false, Message = "refused" });
        st.Apply(new RunFinished { Step = 14, Kimg = 0.448, WeightsSha256 = "w", EmaSha256 = "e" });
        return st;
    }

    [Fact]
    public void Snapshot_restores_every_field_of_the_original_state()
    {
        var st = EveryFieldSet();
        RunStateComparison.DefaultFields(st).Should().BeEmpty("the original must exercise every field, or a lost one would not show");
        st.RollbackStep.Should().Be(17);
        var back = RunState.FromSnapshot(RunSnapshot.Parser.ParseFrom(st.ToSnapshot().ToByteArrayHelper()));
        RunStateComparison.Differences(st, back).Should().BeEmpty();
        back.Commands.Keys.Should().BeEquivalentTo("k0", "k1", "k2", "k3");
        back.Paused.Should().BeTrue();
    }

    [Fact]
    public void The_comparison_sees_a_field_the_snapshot_loses()
    {
        var st = EveryFieldSet();
        var snapshot = st.ToSnapshot();
        snapshot.ClearRollbackStep(); // what every snapshot looked like before rollback_step was added
        var back = RunState.FromSnapshot(RunSnapshot.Parser.ParseFrom(snapshot.ToByteArrayHelper()));
        RunStateComparison.Differences(st, back).Should().ContainSingle().Which.Should().StartWith("RollbackStep");
    }

    [Fact]
    public void A_snapshot_written_before_rollback_step_existed_counts_rollbacks_conservatively()
    {
        var st = new RunState();
        st.Apply(new RunStarted { RunId = "r", ConfigHocon = "ect {}" });
        st.Apply(new CheckpointCommitted { Path = "p10", Step = 10, Sha256 = "x" });
        st.Apply(new RolledBack { FromStep = 14, ToStep = 10, Reason = "nan" });
        var old = st.ToSnapshot();
        old.ClearRollbackStep();
        old.HasRollbackStep.Should().BeFalse();
        var back = RunState.FromSnapshot(RunSnapshot.Parser.ParseFrom(old.ToByteArrayHelper()));
        back.RollbackStep.Should().Be(10, "read as the last committed step");
        // Recomputing the checkpoint the run rolled back to is no progress: the count stays; a later one resets it.
        back.Apply(new CheckpointCommitted { Path = "p10", Step = 10, Sha256 = "x" });
        back.RollbacksInARow.Should().Be(1);
        back.Apply(new CheckpointCommitted { Path = "p20", Step = 20, Sha256 = "y" });
        back.RollbacksInARow.Should().Be(0);
    }
}

internal static class ProtoExtensions
{
    public static byte[] ToByteArrayHelper(this Google.Protobuf.IMessage m) => Google.Protobuf.MessageExtensions.ToByteArray(m);
}
