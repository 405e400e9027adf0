using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using Ect.Actors.Tests.RunTests;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Metric;

/// <summary>The metric values of an evaluation survive the journal (event) and a recovery from a snapshot.</summary>
public class MetricJournalTests
{
    private static EvaluationRecorded Recorded()
    {
        var e = new EvaluationRecorded { Evaluator = "fd-resnet18", Step = 400 };
        e.Files.Add("metrics.jsonl");
        e.Files.Add("fd.png");
        e.Metrics["fd-resnet18-1step"] = 123.456789012345;
        e.Metrics["fd-resnet18-2step"] = 98.7;
        return e;
    }

    [Fact]
    public void EvaluationRecorded_keeps_its_metrics_through_the_event_serializer()
    {
        var s = new RunEventSerializer(null!);
        var e = Recorded();
        s.Manifest(e).Should().Be("EvaluationRecorded.v1");
        var back = (EvaluationRecorded)RunEventSerializer.Parse(s.ToBinary(e), "EvaluationRecorded.v1");
        back.Metrics.Should().Equal(new Dictionary<string, double> { ["fd-resnet18-1step"] = 123.456789012345, ["fd-resnet18-2step"] = 98.7 });
        back.Should().Be(e);
    }

    [Fact]
    public void A_state_recovered_from_a_snapshot_has_the_same_metric_values()
    {
        var st = new RunState();
        st.Apply(new RunStarted { RunId = "r", ConfigHocon = "ect {}" });
        st.Apply(Recorded());
        var back = RunState.FromSnapshot(RunSnapshot.Parser.ParseFrom(st.ToSnapshot().ToByteArrayHelper()));
        back.Evaluations.Should().ContainSingle().Which.Metrics["fd-resnet18-1step"].Should().Be(123.456789012345);
    }
}
