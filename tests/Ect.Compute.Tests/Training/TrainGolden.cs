using Ect.Compute.IO;
using Ect.Compute.Tests.TestSupport;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Training;

/// <summary>The golden ddpmpp-small tensors for the train-area tests (via the team's RepoPaths / RawTensorFolder).</summary>
public static class TrainGolden
{
    public static string Dir() => RepoPaths.GoldenDir("ddpmpp-small");

    /// <summary>Reads entry <paramref name="name"/> of index <paramref name="index"/> (tensors.json, weights.json, grads.json).</summary>
    public static Tensor Load(string name, string index = "tensors.json") => new RawTensorFolder(Path.Combine(Dir(), index)).Read(name);
}
