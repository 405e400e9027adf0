using Ect.Actors.Configuration;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

/// <summary>Issue 12, point 4: every live key has a documented range, the stage cannot overflow, replayed changes yield to later ones.</summary>
public class LiveKeyRangeTests
{
    private static readonly Akka.Configuration.Config Defaults = EctConfiguration.Load(null, []);

    [Fact]
    public void Every_live_key_has_a_range_that_holds_its_default_and_default_conf_documents_it()
    {
        LiveKeyRanges.Ranges.Keys.Should().BeEquivalentTo(RunSettings.LiveKeys);
        var conf = File.ReadAllText(Path.Combine(RepoRoot.Find(), "hocon", "default.conf"));
        foreach (var (key, range) in LiveKeyRanges.Ranges)
        {
            range.Contains(Defaults.GetDouble(key)).Should().BeTrue($"{key}'s default is in its range");
            conf.Should().Contain($"[live: {range.Text}]", $"default.conf documents {key}'s range");
        }
        LiveKeyRanges.Violations(Defaults).Should().BeEmpty();
    }

    [Theory]
    [InlineData("ect.tuning.lr", "1e308", "1e-8 to 0.1")]
    [InlineData("tuning.lr", "0.5", "1e-8 to 0.1")]
    [InlineData("ect.pretrain.lr", "1e-12", "1e-8 to 0.1")]
    [InlineData("ect.tuning.double-ticks", "1e-300", "0.01 to 1000000")]
    [InlineData("ect.run.max-steps", "10000000000000", "0 (no cap) to 1000000000000")]
    [InlineData("ect.checkpoint.every-steps", "2000000000", "1 to 1000000000")]
    [InlineData("ect.checkpoint.keep-last", "5000", "1 to 1000")]
    [InlineData("ect.evaluation.every-steps", "2000000000", "0 (only at the end) to 1000000000")]
    public void A_live_change_outside_its_range_is_refused_naming_the_range(string key, string value, string range)
    {
        var full = key.StartsWith("ect.") ? key : "ect." + key;
        RunSettings.CheckLiveChange(Defaults, key, value).Should().Contain(full).And.Contain(range);
    }

    [Theory]
    [InlineData("ect.tuning.lr", "2e-4")]
    [InlineData("ect.tuning.double-ticks", "40")]
    [InlineData("ect.checkpoint.every-steps", "7")]
    [InlineData("ect.run.max-steps", "0")]
    public void A_live_change_inside_its_range_is_accepted(string key, string value) =>
        RunSettings.CheckLiveChange(Defaults, key, value).Should().BeNull();

    [Fact]
    public void A_run_started_outside_a_range_is_refused_too()
    {
        var act = () => RunSettings.From(EctConfiguration.Load(null, ["tuning.lr=1e308"]), checkData: false);
        act.Should().Throw<ConfigurationException>().WithMessage("*ect.tuning.lr = 1e308: outside its range 1e-8 to 0.1*");
    }

    [Fact]
    public void A_value_that_breaks_its_own_rule_is_reported_once()
    {
        var act = () => RunSettings.From(EctConfiguration.Load(null, ["tuning.lr=-3"]), checkData: false);
        var message = act.Should().Throw<ConfigurationException>().Which.Message;
        message.Split("ect.tuning.lr").Should().HaveCount(2, "one line for the key: " + message);
    }

    [Theory]
    [InlineData(2147483647L)]
    [InlineData(1001L)]
    [InlineData(-1L)]
    [InlineData(99999999999L)]
    public void A_stage_outside_0_to_1000_is_refused(long stage) =>
        LiveKeyRanges.CheckStage(stage).Should().Contain("outside its range 0 to 1000");

    [Fact]
    public void The_stage_counter_stops_at_the_highest_stage_instead_of_overflowing()
    {
        // double-ticks = 1e-300 (an old journal may hold it): +inf ticks per stage used to wrap to a negative stage.
        Schedule.StageAt(1000, 0, 64, 1.0, 1e-300, []).Should().Be(LiveKeyRanges.MaxStage);
        // A journaled user stage of int.MaxValue, and the counter running on from it.
        Schedule.StageAt(2000, 0, 64, 1.0, 1.0, [(1000L, int.MaxValue)]).Should().Be(LiveKeyRanges.MaxStage);
        Schedule.StageAt(1000, 0, 64, 1.0, 1.0, [(1000L, int.MaxValue)]).Should().Be(LiveKeyRanges.MaxStage);
        Schedule.StageAt(long.MaxValue, 0, int.MaxValue, 1e-300, 0.01, []).Should().Be(LiveKeyRanges.MaxStage);
        // Below the cap nothing changed: 64 images a step, a tick of 1 kimg, 8 ticks a stage (125 steps).
        Schedule.StageAt(125 * 3, 0, 64, 1.0, 8, []).Should().Be(3);
        Schedule.StageAt(125 * 3 - 1, 0, 64, 1.0, 8, []).Should().Be(2);
        Schedule.StageAt(10, 0, 64, 1.0, 8, [(5L, 999)]).Should().Be(999);
    }

    private static ConfigChanged Change(string key, string value, long step, string id) =>
        new() { Key = key, Value = value, Step = step, IdempotencyKey = id };

    [Fact]
    public void Changes_journaled_in_step_order_are_all_replayed()
    {
        var journal = new[] { Change("ect.tuning.lr", "2e-4", 100, "a"), Change("ect.tuning.lr", "3e-4", 200, "b"), Change("ect.checkpoint.every-steps", "7", 150, "c") };
        LiveChanges.Effective(journal).Select(c => c.IdempotencyKey).Should().Equal("a", "b", "c");
    }

    [Fact]
    public void A_change_journaled_later_at_an_earlier_step_supersedes_the_replayed_one()
    {
        // lr = 1e308 at step 120; the run rolls back to 110; `ect ctl set tuning.lr=1e-4` lands at step 115 (or a
        // revert at the resume step 110): the poisoned change is never replayed again.
        var journal = new[]
        {
            Change("ect.tuning.lr", "1e308", 120, "poison"), Change("ect.checkpoint.every-steps", "7", 130, "other"),
            Change("ect.tuning.lr", "1e-4", 115, "fix"),
        };
        LiveChanges.Effective(journal).Select(c => c.IdempotencyKey).Should().Equal("other", "fix");
        var revert = new[] { Change("ect.tuning.lr", "1e308", 120, "poison"), Change("ect.tuning.lr", "1e-4", 120, "revert:poison") };
        LiveChanges.Effective(revert).Select(c => c.IdempotencyKey).Should().Equal("revert:poison");
    }
}
