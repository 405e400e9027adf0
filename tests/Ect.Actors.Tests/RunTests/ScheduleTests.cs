using Ect.Actors.Engine;
using Ect.Actors.Run;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

public class ScheduleTests
{
    [Fact]
    public void Phase_switches_to_tuning_after_pretraining() 
    {
        Schedule.PhaseAt(99, 100).Should().Be(Phases.Pretrain);
        Schedule.PhaseAt(100, 100).Should().Be(Phases.Tuning);
        Schedule.PhaseAt(0, 0).Should().Be(Phases.Tuning);
    }

    [Fact]
    public void Stage_advances_every_double_ticks_of_tuning_images()
    {
        // batch 100, 1 kimg per tick, 2 ticks per stage: 20 steps per stage, counted from step 50.
        int At(long step) => Schedule.StageAt(step, 50, 100, 1.0, 2, []);
        At(50).Should().Be(0);
        At(69).Should().Be(0);
        At(70).Should().Be(1);
        At(110).Should().Be(3);
    }

    [Fact]
    public void A_user_stage_rebases_the_schedule_at_its_step()
    {
        var user = new List<(long, int)> { (60, 5) };
        Schedule.StageAt(59, 50, 100, 1.0, 2, user).Should().Be(0);
        Schedule.StageAt(60, 50, 100, 1.0, 2, user).Should().Be(5);
        Schedule.StageAt(80, 50, 100, 1.0, 2, user).Should().Be(6);
    }
}
