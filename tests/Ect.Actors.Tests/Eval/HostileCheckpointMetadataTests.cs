using Ect.Actors.Checkpoints;
using Ect.Compute.IO;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Eval;

/// <summary>
/// A checkpoint describes its own network in its metadata (user.network-config), and `ect eval` builds what it
/// describes. The description is hostile input like the tensors: a description the tensors do not fit -- above all
/// one of a network far larger than the file -- must be refused by name before the network is allocated.
/// </summary>
[Collection("Console")]
public sealed class HostileCheckpointMetadataTests(TinyCheckpointFixture f) : IClassFixture<TinyCheckpointFixture>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-hostile-ckpt-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>The fixture's checkpoint with some metadata values replaced.</summary>
    private string Rewritten(string name, Func<Dictionary<string, string>, Dictionary<string, string>> change)
    {
        var path = Path.Combine(_dir, name);
        var c = Safetensors.Read(f.Checkpoint);
        try { Safetensors.Write(path, c.Tensors, change(c.Metadata.ToDictionary())); }
        finally { foreach (var t in c.Tensors.Values) t.Dispose(); }
        return path;
    }

    private string WithNetwork(string name, Ect.Compute.Networks.SongUNetConfig config) =>
        Rewritten(name, m => { m["user.network-config"] = CheckpointModel.SerializeConfig(config); return m; });

    [Fact]
    public void A_description_of_a_network_far_larger_than_the_file_is_refused_before_it_is_built()
    {
        // 2^20 channels: its first 3x3 convolution alone is 2^40 x 9 floats (~40 TB). Built for real, libtorch fails
        // inside the constructor with an ExternalException (or, for a network that fits the address space but not the
        // machine, initializes gigabytes until the kernel kills the process); checked on the meta device, it is an
        // InvalidDataException naming the file and the first tensor that does not fit.
        var path = WithNetwork("huge.safetensors", f.Config with { ModelChannels = 1 << 20 });
        var act = () => CheckpointModel.Load(path);
        act.Should().Throw<InvalidDataException>().Which.Message.Should().Contain(path)
            .And.Contain("checked before building the network").And.Contain("has shape");
    }

    [Fact]
    public void A_description_that_differs_from_the_tensors_is_refused_naming_the_first_tensor()
    {
        var path = WithNetwork("wider.safetensors", f.Config with { ModelChannels = f.Config.ModelChannels * 2 });
        var act = () => CheckpointModel.Load(path);
        act.Should().Throw<InvalidDataException>().Which.Message.Should().Contain("ema/").And.Contain("the network expects");
        path = WithNetwork("deeper.safetensors", f.Config with { NumBlocks = f.Config.NumBlocks + 1 });
        act = () => CheckpointModel.Load(path);
        act.Should().Throw<InvalidDataException>().Which.Message.Should().Contain("has no tensor 'ema/");
        // Without its attention at 16x16 the network is the same but for the attention layers: the file has more.
        path = WithNetwork("no-attention.safetensors", f.Config with { AttnResolutions = [] });
        act = () => CheckpointModel.Load(path);
        act.Should().Throw<InvalidDataException>().Which.Message.Should().Contain("that the network does not have");
    }

    [Fact]
    public void A_resolution_beyond_any_network_and_a_step_that_is_not_a_number_are_refused_by_name()
    {
        var path = WithNetwork("wide-images.safetensors", f.Config with { ImgResolution = 1 << 16 });
        var act = () => CheckpointModel.Load(path);
        act.Should().Throw<InvalidDataException>().Which.Message.Should().Contain(path).And.Contain($"up to {CheckpointModel.MaxResolution}");

        path = Rewritten("step.safetensors", m => { m["user.step"] = "three"; return m; });
        act = () => CheckpointModel.Load(path);
        act.Should().Throw<InvalidDataException>().Which.Message.Should().Contain("'user.step' = 'three'");
    }

    [Fact]
    public void Ect_eval_of_such_a_checkpoint_exits_1_naming_it_and_writes_nothing()
    {
        var path = WithNetwork("huge-eval.safetensors", f.Config with { ModelChannels = 1 << 20 });
        var result = Path.Combine(_dir, "r.json");
        var (code, _, err) = CliHarness.Run("eval", "--checkpoint", path, "--num", "4", "--threads", "1", "--batch", "4",
            "--data", f.DataPath, "--cache-dir", f.CacheDir, "--out", result);
        code.Should().Be(1, err);
        err.Should().Contain(path).And.Contain("checked before building the network");
        File.Exists(result).Should().BeFalse();
    }

    [Fact]
    public void The_untouched_checkpoint_still_loads()
    {
        using var model = CheckpointModel.Load(f.Checkpoint);
        model.Config!.ToString().Should().Be(f.Config.ToString());
    }
}
