using System.Buffers.Binary;
using Ect.Data.Imaging;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// Issue 12, point 2, through the real `ect train`: a dataset folder holding a PNG whose header claims 65536 x 65537
/// used to end the process with SIGSEGV (exit 139: the decoder wrote past a buffer sized by an overflowed product).
/// Now the run refuses it with exit 1, naming the file and the size. (Ect.Data.Tests' HostileHeaderTests cover
/// every format's header; this checks that the daemon reports it instead of crashing.)
/// </summary>
public class HostileDatasetTests(ITestOutputHelper output)
{
    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        return c ^ 0xFFFFFFFFu;
    }

    [Fact]
    public async Task Ect_train_on_a_folder_with_a_png_claiming_65536_x_65537_exits_1_naming_the_file_not_139()
    {
        var work = Directory.CreateTempSubdirectory("ect-hostile-").FullName;
        var data = Directory.CreateDirectory(Path.Combine(work, "data")).FullName;
        File.WriteAllBytes(Path.Combine(data, "a.png"), PngEncoder.EncodeChw(new byte[3 * 32 * 32], 3, 32, 32));
        var png = PngEncoder.EncodeChw(new byte[3], 3, 1, 1);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(16), 65536);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(20), 65537);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), Crc32(png.AsSpan(12, 17)));
        File.WriteAllBytes(Path.Combine(data, "b-huge.png"), png);

        var (code, o, e, took) = await EctProcess.RunAsync(TimeSpan.FromSeconds(120), "train", "--run-dir", Path.Combine(work, "run"),
            "--set", "run.engine=torch", "--set", $"data.path={data}", "--set", "data.resolution=32", "--set", "control.enabled=off",
            "--set", "display.mode=off", "--set", "run.threads=1", "--set", "network.init=", "--steps", "1");
        // (network.init cleared: the shipped 1-channel teacher would be refused for this 3-channel data before any image is read.)
        output.WriteLine($"exit {code} after {took.TotalSeconds:F1} s\n{o}\n{e}");
        code.Should().Be(1, "a refused dataset, not a crash (139 = SIGSEGV, 134 = SIGABRT)");
        e.Should().Contain("b-huge.png").And.Contain("65536x65537");
    }
}
