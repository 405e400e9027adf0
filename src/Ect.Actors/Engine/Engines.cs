using Ect.Actors.Configuration;
using Ect.Actors.Run;

namespace Ect.Actors.Engine;

/// <summary>Picks the engine named by ect.run.engine.</summary>
public static class Engines
{
    public static EngineFactory ForSettings(RunSettings settings) => settings.Engine switch
    {
        "fake" => Fake,
        // HOOK(train/data merge): TorchTrainingEngine + DatasetBatchSource once Ect.Compute.Training and Ect.Data land.
        _ => _ => throw new ConfigurationException(
            "ect.run.engine = torch: the TorchSharp engine is not in this build yet; use --set ect.run.engine=fake"),
    };

    /// <summary>Refuses, before any work, an engine this build cannot run.</summary>
    public static void Check(RunSettings settings)
    {
        if (settings.Engine == "torch")
            throw new ConfigurationException(
                "ect.run.engine = torch: the TorchSharp engine is not in this build yet; use --set ect.run.engine=fake");
    }

    public static (ITrainingEngine, IBatchSource) Fake(RunSettings s)
    {
        var c = s.Config;
        int parameters = c.GetInt("ect.fake.parameters", 4096);
        var engine = new FakeTrainingEngine(s.Seed, parameters, s.EmaBeta, c.GetInt("ect.fake.step-ms", 0), c.GetLong("ect.fake.nan-at-step", 0),
            c.GetInt("ect.fake.write-ms", 0), c.GetInt("ect.fake.eval-ms", 0));
        return (engine, new FakeBatchSource(s.Seed, s.BatchSize, width: 64));
    }
}
