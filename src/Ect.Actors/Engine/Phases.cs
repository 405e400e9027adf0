namespace Ect.Actors.Engine;

/// <summary>The training phases of a run, in order.</summary>
public static class Phases
{
    public const string Pretrain = "pretrain";
    public const string Tuning = "tuning";
    public const string FinalEvaluation = "final-evaluation";
    public const string Finished = "finished";
}
