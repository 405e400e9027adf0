using Ect.Compute.Networks;
using Ect.Compute.Networks.Edm2;
using Ect.Compute.Preconditioning;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Networks;

/// <summary>
/// MetaShapes builds a described network on the meta device to check a file's description against its tensors
/// before anything is allocated. It must give the shapes a real build gives, put every parameter and buffer on meta
/// (a constructor that ignores ModuleDevice.Current would allocate for real), and leave other threads alone.
/// </summary>
public class MetaShapesTests
{
    private static readonly SongUNetConfig Song = SongUNetConfig.DdpmPP(32, 1, 0, 4, [1, 2], 1, [16], 0.1);
    private static readonly Edm2UNetConfig Edm2 = new()
    {
        ImgResolution = 8, ImgChannels = 4, LabelDim = 10, ModelChannels = 16, ChannelMult = [1, 2], NumBlocks = 1, AttnResolutions = [4],
        ChannelsPerHead = 8,
    };

    public static TheoryData<string> Networks => new() { "ect", "edm", "edm2" };

    private static nn.Module Build(string which, int scale = 1) => which switch
    {
        "ect" => new EctPrecond(Song with { ModelChannels = Song.ModelChannels * scale }),
        "edm" => new EdmPrecond(Song with { ModelChannels = Song.ModelChannels * scale }),
        _ => new Edm2Precond(Edm2 with { ModelChannels = Edm2.ModelChannels * scale }),
    };

    [Theory]
    [MemberData(nameof(Networks))]
    public void The_shapes_are_those_of_a_real_build(string which)
    {
        var meta = MetaShapes.Of(() => Build(which));
        using var real = Build(which);
        var sd = real.state_dict();
        meta.Keys.Should().Equal(sd.Keys, "same names in the same order");
        foreach (var (k, t) in sd) meta[k].Should().Equal(t.shape, k);
    }

    [Theory]
    [MemberData(nameof(Networks))]
    public void Every_parameter_and_buffer_of_a_meta_build_is_on_meta(string which)
    {
        using (ModuleDevice.Use(new Device(DeviceType.META)))
        {
            using var net = Build(which);
            net.state_dict().Where(kv => kv.Value.device_type != DeviceType.META).Select(kv => kv.Key)
                .Should().BeEmpty("a constructor that ignores ModuleDevice.Current allocates that tensor for real");
        }
        using var after = Build(which);
        after.state_dict().Values.Should().OnlyContain(t => t.device_type == DeviceType.CPU, "the scope ended");
    }

    [Fact]
    public void A_description_of_a_network_far_larger_than_memory_is_measured_without_allocating_it()
    {
        // 2^16 x the channels: ~4e12 parameters, 16 TB of float32; on meta it is shapes only.
        var shapes = MetaShapes.Of(() => Build("ect", 1 << 16));
        shapes.Values.Sum(s => s.Aggregate(1L, (a, b) => a * b)).Should().BeGreaterThan(1_000_000_000_000L);
    }

    [Fact]
    public void Another_thread_keeps_making_real_tensors_while_one_builds_on_meta()
    {
        using var building = new ManualResetEventSlim();
        using var checkedOther = new ManualResetEventSlim();
        DeviceType? other = null;
        var thread = new Thread(() =>
        {
            building.Wait();
            using var t = randn(3);
            other = t.device_type;
            checkedOther.Set();
        });
        thread.Start();
        MetaShapes.Of(() =>
        {
            building.Set();
            checkedOther.Wait(TimeSpan.FromSeconds(30)).Should().BeTrue("the other thread made its tensor");
            return Build("ect");
        });
        thread.Join();
        other.Should().Be(DeviceType.CPU, "TorchSharp's own default device is process-wide; ModuleDevice is per thread");
    }
}
