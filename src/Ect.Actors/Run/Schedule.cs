using Ect.Actors.Configuration;
using Ect.Actors.Engine;

namespace Ect.Actors.Run;

/// <summary>
/// ECT's schedule as pure functions of the step, so that a resumed run recomputes exactly what the
/// uninterrupted one did. Phase: pretraining for the first pretrain.steps steps, then tuning.
/// Stage (paper section 4): stage = floor(tick / double_ticks), ticks counted in kimg_per_tick thousand
/// images from the start of tuning; a user's stage change at step S re-bases the count at S. The stage never exceeds
/// <see cref="LiveKeyRanges.MaxStage"/>.
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
        if (step < baseStep) return Math.Clamp(baseStage, 0, LiveKeyRanges.MaxStage);
        double images = (double)(step - baseStep) * batchSize;
        double ticks = images / (kimgPerTick * 1000.0);
        double advance = Math.Floor(ticks / doubleTicks + 1e-9);
        // Checked 64-bit: the stage stops at MaxStage (a tiny double-ticks, a huge user stage, a long run) instead of
        // wrapping (int)(+inf) to a negative stage; NaN (a zero kimg-per-tick the settings refuse) counts as no advance.
        if (!(advance >= 0)) advance = 0;
        if (advance >= LiveKeyRanges.MaxStage) return LiveKeyRanges.MaxStage;
        long stage = checked((long)baseStage + (long)advance);
        return (int)Math.Clamp(stage, 0, LiveKeyRanges.MaxStage);
    }
}
