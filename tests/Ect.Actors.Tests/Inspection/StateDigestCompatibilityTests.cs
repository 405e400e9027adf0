using Ect.Compute;
using Ect.Compute.IO;
using Ect.Compute.Training;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using Ect.Actors.Checkpoints;

namespace Ect.Actors.Tests.Inspection;

/// <summary>
/// `ect inspect`'s group digests, read from a file written by Ect.Compute.IO.Safetensors (what TrainState
/// writes), equal Ect.Compute.Training.StateDigest over the same tensors: the trainer and the CLI agree.
/// </summary>
public sealed class StateDigestCompatibilityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-digest-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void Inspect_digest_of_net_and_ema_groups_equals_StateDigest()
    {
        torch.set_num_threads(1);
        using var scope = NewDisposeScope();
        var gen = new Generator(1234);
        var net = new Dictionary<string, Tensor>
        {
            ["enc.32x32_conv.weight"] = randn([8, 3, 3, 3], generator: gen),
            ["enc.32x32_conv.bias"] = randn([8], generator: gen),
            ["map_noise.freqs"] = randn([16], dtype: ScalarType.Float64, generator: gen),
            ["counter"] = tensor(new long[] { 7, 8, 9 }),
        };
        var ema = net.ToDictionary(kv => kv.Key, kv => kv.Value.to_type(kv.Value.dtype).Times(1));
        ema["enc.32x32_conv.bias"] = ema["enc.32x32_conv.bias"].Plus(0.5f);

        var all = net.Select(kv => ("net/" + kv.Key, kv.Value)).Concat(ema.Select(kv => ("ema/" + kv.Key, kv.Value)))
            .Append(("rng", tensor(new byte[] { 1, 2, 3 }))).ToDictionary(x => x.Item1, x => x.Item2);
        var path = Path.Combine(_dir, "state.safetensors");
        Safetensors.Write(path, all, new Dictionary<string, string> { ["ect.step"] = "5" });

        var s = CheckpointSummary.Of(path);
        s.WeightsDigest.Should().Be(StateDigest.Compute(net.Select(kv => (kv.Key, kv.Value))));
        s.EmaDigest.Should().Be(StateDigest.Compute(ema.Select(kv => (kv.Key, kv.Value))));
        s.EmaDigest.Should().NotBe(s.WeightsDigest);
        s.Step.Should().Be(5);
    }
}
