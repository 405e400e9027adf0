using Ect.Actors.Configuration;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Metric;

public class MetricEvaluatorConfigTests
{
    private static RunSettings Parse(string evaluators) =>
        RunSettings.From(EctConfiguration.Load(null, [$"evaluation.evaluators={evaluators}"]), checkData: false);

    [Fact]
    public void A_sample_grid_names_the_times_it_sampled_at_for_every_step_count()
    {
        var s = Parse("[{type = sample-grid, sampling-steps = [1, 2, 4], t-max = 80.0, mid-t = 0.821}]").Evaluation.Evaluators.Single();
        Ect.Actors.Run.SampleGridEvaluator.ViewName(800, 1, s).Should().Be("view-000000800-1step-t80.png");
        Ect.Actors.Run.SampleGridEvaluator.ViewName(800, 2, s).Should().Be("view-000000800-2step-t80-0.821.png");
        // 4 steps sample at EDM's Karras times (as `ect eval --steps 4`), not at t-max and mid-t
        Ect.Actors.Run.SampleGridEvaluator.ViewName(800, 4, s).Should().Be("view-000000800-4step-t80-17.528-2.515-0.17.png");
    }

    [Fact]
    public void An_fd_resnet18_evaluator_gets_the_documented_defaults()
    {
        var e = Parse("[{type = fd-resnet18}]").Evaluation.Evaluators.Should().ContainSingle().Subject;
        e.Type.Should().Be("fd-resnet18");
        e.SamplingSteps.Should().Equal(1, 2);
        e.Count.Should().Be(2000);
        e.Seed.Should().Be(1234);
        e.TMax.Should().Be(80.0);
        e.MidT.Should().Be(0.821);
        e.ReferenceCount.Should().Be(10000);
        e.Batch.Should().Be(100);
        e.CacheDir.Should().Be("");
        e.Threads.Should().Be(1);
    }

    [Fact]
    public void Every_key_is_read_and_a_sample_grid_beside_it_keeps_its_own_defaults()
    {
        var s = Parse("[{type = sample-grid}, {type = fd-resnet18, sampling-steps = [2], count = 32, seed = 7, t-max = 40.0, " +
                      "mid-t = 1.5, reference-count = 0, batch = 8, cache-dir = \"/tmp/x\", threads = 2}]");
        s.Evaluation.Evaluators.Should().HaveCount(2);
        s.Evaluation.Evaluators[0].Count.Should().Be(64, "sample-grid's default count is unchanged");
        var e = s.Evaluation.Evaluators[1];
        (e.Count, e.Seed, e.TMax, e.MidT).Should().Be((32, 7, 40.0, 1.5));
        e.SamplingSteps.Should().Equal(2);
        (e.ReferenceCount, e.Batch, e.CacheDir, e.Threads).Should().Be((0, 8, "/tmp/x", 2));
    }

    [Fact]
    public void The_default_configuration_documents_the_type_but_does_not_enable_it()
    {
        var conf = File.ReadAllText(Path.Combine(RepoRoot.Find(), "hocon", "default.conf"));
        foreach (var key in EvaluationSettings.EvaluatorKeys["fd-resnet18"].Skip(1))
            conf.Should().Contain(key, "each fd-resnet18 key is documented in hocon/default.conf");
        RunSettings.From(EctConfiguration.Load(null, []), checkData: false).Evaluation.Evaluators.Select(e => e.Type).Should().Equal("sample-grid");
    }

    [Theory]
    [InlineData("count = 1", "ect.evaluation.evaluators[0].count")]
    [InlineData("count = many", "ect.evaluation.evaluators[0].count")]
    [InlineData("sampling-steps = [9]", "ect.evaluation.evaluators[0].sampling-steps")]
    [InlineData("sampling-steps = [0]", "ect.evaluation.evaluators[0].sampling-steps")]
    [InlineData("sampling-steps = [2, 2]", "ect.evaluation.evaluators[0].sampling-steps")]
    [InlineData("sampling-steps = []", "ect.evaluation.evaluators[0].sampling-steps")]
    [InlineData("reference-count = 1", "ect.evaluation.evaluators[0].reference-count")]
    [InlineData("batch = 0", "ect.evaluation.evaluators[0].batch")]
    [InlineData("t-max = -1", "ect.evaluation.evaluators[0].t-max")]
    [InlineData("mid-t = 90", "ect.evaluation.evaluators[0].mid-t")]
    [InlineData("threads = 0", "ect.evaluation.evaluators[0].threads")]
    [InlineData("refrence-count = 5", "ect.evaluation.evaluators[0].refrence-count")]
    public void A_wrong_value_is_refused_naming_the_key(string entry, string key)
    {
        var act = () => Parse($"[{{type = fd-resnet18, {entry}}}]");
        act.Should().Throw<ConfigurationException>().WithMessage($"*{key}*");
    }

    [Fact]
    public void Two_wrong_keys_are_both_named_in_one_message()
    {
        var act = () => Parse("[{type = fd-resnet18, count = 0, batch = -1}]");
        act.Should().Throw<ConfigurationException>()
            .Which.Message.Should().Contain("evaluators[0].count").And.Contain("evaluators[0].batch");
    }

    [Fact]
    public void An_unknown_type_lists_the_known_ones()
    {
        var act = () => Parse("[{type = fid}]");
        act.Should().Throw<ConfigurationException>().WithMessage("*unknown evaluator*sample-grid, fd-resnet18*");
    }
}
