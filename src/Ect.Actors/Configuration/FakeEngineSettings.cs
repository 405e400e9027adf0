namespace Ect.Actors.Configuration;

/// <summary>
/// ect.fake.*: the fake engine's knobs for daemon tests (ect.run.engine = fake): parameter count, the time a step, a
/// checkpoint write and an evaluation take, and a step whose loss is NaN (0 = none).
/// </summary>
public sealed record FakeEngineSettings(int Parameters, int StepMs, int WriteMs, int EvalMs, long NanAtStep)
{
    internal static FakeEngineSettings Read(SettingsReader r) => new(
        r.Int("ect.fake.parameters", v => v >= 1, "must be >= 1"),
        r.Int("ect.fake.step-ms", v => v >= 0, "must be >= 0"),
        r.Int("ect.fake.write-ms", v => v >= 0, "must be >= 0"),
        r.Int("ect.fake.eval-ms", v => v >= 0, "must be >= 0"),
        r.Long("ect.fake.nan-at-step", v => v >= 0, "must be >= 0 (0 = never)"));
}
