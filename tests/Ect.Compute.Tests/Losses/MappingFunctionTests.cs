using Ect.Compute.Losses;
using Ect.Compute.Tests.Training;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Losses;

[Collection(Ect.Compute.Tests.Training.GlobalTorchStateCollection.Name)]
public class MappingFunctionTests
{
    [Theory]
    [InlineData(MappingKind.Sigmoid, 0, "sigmoid_stage0")]
    [InlineData(MappingKind.Const, 0, "const_stage0")]
    [InlineData(MappingKind.Sigmoid, 1, "sigmoid_stage1")]
    [InlineData(MappingKind.Const, 1, "const_stage1")]
    [InlineData(MappingKind.Sigmoid, 3, "sigmoid_stage3")]
    [InlineData(MappingKind.Const, 3, "const_stage3")]
    public void TToR_matches_the_reference_tables(MappingKind kind, int stage, string table)
    {
        torch.set_num_threads(1);
        using var t = TrainGolden.Load("t_to_r/t");
        using var expected = TrainGolden.Load("t_to_r/" + table);
        var m = new MappingFunction(kind, q: 2, k: 8, b: 1, stage: stage);
        using var r = m.TToR(t);
        r.dtype.Should().Be(ScalarType.Float32);
        var got = r.data<float>().ToArray();
        var exp = expected.data<float>().ToArray();
        for (int i = 0; i < exp.Length; i++)
            got[i].Should().BeApproximately(exp[i], 1e-6f * Math.Max(1f, Math.Abs(exp[i])), $"entry {i} (t = {t[i].item<float>()})");
        got.Should().OnlyContain(v => v >= 0, "r is clamped at 0");
    }

    [Fact]
    public void Stage_change_moves_r_towards_t()
    {
        using var t = tensor(new[] { 0.5f, 2f, 20f });
        var m = new MappingFunction(MappingKind.Const, q: 2);
        using var r0 = m.TToR(t);
        m.Stage = 4;
        using var r4 = m.TToR(t);
        r0.data<float>().ToArray().Should().Equal(0.25f, 1f, 10f);
        (t - r4).data<float>().ToArray().Should().Equal(0.5f / 32, 2f / 32, 20f / 32);
        m.Ratio.Should().Be(1 - 1.0 / 32);
    }

    [Fact]
    public void Rejects_bad_settings()
    {
        FluentActions.Invoking(() => new MappingFunction(q: 1)).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*q > 1*");
        FluentActions.Invoking(() => new MappingFunction { Stage = -1 }).Should().Throw<ArgumentOutOfRangeException>();
    }
}
