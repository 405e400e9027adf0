using Ect.Actors.Engine;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

public class FakeEngineTests
{
    [Fact]
    public void Capture_and_load_continue_to_the_same_bits()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var (a, sa) = (new FakeTrainingEngine(3, 512, 0.99), new FakeBatchSource(3, 4, 16, size: 10));
        for (int i = 0; i < 5; i++) a.Step(sa.Next());
        string state = "";
        using (var img = a.Capture(new Dictionary<string, string> { ["k"] = "v" })) img.WriteTo(Path.Combine(dir, "c"));
        var b1 = sa.Next(); state = b1.StateAfter;
        a.Step(b1);
        for (int i = 0; i < 7; i++) a.Step(sa.Next());

        var b = new FakeTrainingEngine(99, 512, 0.99);
        b.LoadCheckpoint(Path.Combine(dir, "c"))["k"].Should().Be("v");
        var sb = new FakeBatchSource(3, 4, 16, size: 10);
        sb.Restore(state);
        b.Step(b1);
        for (int i = 0; i < 7; i++) b.Step(sb.Next());
        b.WeightsDigest().Should().Be(a.WeightsDigest());
        b.EmaDigest().Should().Be(a.EmaDigest());
        new FakeTrainingEngine(3, 512, 0.99).WeightsDigest().Should().NotBe(a.WeightsDigest());
    }
}
