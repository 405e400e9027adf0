using Ect.Actors.Engine;

namespace Ect.Actors.Run;

/// <summary>
/// ECT's schedule as pure functions of the step, so that a resumed run recomputes exactly what the
/// uninterrupted one did. Phase: pretraining for the first pretrain.steps steps, then tuning.
/// Stage (paper section 4): stage = floor(tick / double_ticks), ticks counted in kimg_per_tick thousand
/// images from the start of tuning; a user's stage change at step S re-bases the count at S.
/// </summary>
public static class Schedule
{
    public static string PhaseAt(long step, long pretrainSteps) => step < pretrainSteps ? Phases.Pretrain : Phases.Tuning;

    public static int StageAt(long step, long pretrainSteps, int batchSize, double kimgPerTick, double doubleTicks,
        IEnumerable<(long Step, int Stage)> userStages)
    {
        long baseStep = pretrainSteps;
        int baseStage = 0;
        foreach (var (s, st) in userStages)
            if (s <= step && s >= baseStep) { baseStep = s; baseStage = st; }
        if (step < baseStep) return baseStage;
        double images = (double)(step - baseStep) * batchSize;
        double ticks = images / (kimgPerTick * 1000.0);
        return baseStage + (int)Math.Floor(ticks / doubleTicks + 1e-9);
    }
}
