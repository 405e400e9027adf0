using System.Buffers.Binary;
using System.Text;
using Ect.Compute.IO;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.IO;

public class SafetensorsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-st-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void Round_trips_every_writable_dtype_and_the_metadata()
    {
        var path = Path.Combine(_dir, "a.safetensors");
        var tensors = new Dictionary<string, Tensor>
        {
            ["f32"] = tensor(new[] { 1.5f, -2f, float.NaN, 3e-38f }, new long[] { 2, 2 }),
            ["f64"] = tensor(new[] { Math.PI, -1e300 }),
            ["i64"] = tensor(new[] { long.MaxValue, -3L, 0L }),
            ["i32"] = tensor(new[] { 7, -9 }),
            ["u8"] = tensor(new byte[] { 0, 255, 3 }),
            ["scalar"] = tensor(2.5f),
            ["empty"] = zeros(0, 3),
        };
        Safetensors.Write(path, tensors, new Dictionary<string, string> { ["k"] = "v \"quoted\" é" });
        var c = Safetensors.Read(path);
        c.Metadata.Should().Equal(new Dictionary<string, string> { ["k"] = "v \"quoted\" é" });
        c.Tensors.Keys.Should().BeEquivalentTo(tensors.Keys);
        foreach (var (k, t) in tensors)
        {
            c.Tensors[k].dtype.Should().Be(t.dtype, k);
            c.Tensors[k].shape.Should().Equal(t.shape, k);
            c.Tensors[k].bytes.ToArray().Should().Equal(t.bytes.ToArray(), k);
        }

        var raw = File.ReadAllBytes(path);
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(raw);
        ((8 + n) % 8).Should().Be(0, "the data section starts 8-byte aligned");
        Encoding.UTF8.GetString(raw, 8, (int)n).Should().Contain("\"__metadata__\"").And.Contain("\"data_offsets\"");
    }

    [Fact]
    public void Reads_bf16_and_f16_as_float32()
    {
        // Hand-written file: 1.0 and -2.5 in bf16 (0x3F80, 0xC020) and f16 (0x3C00, 0xC100).
        var header = "{\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]}}";
        var hb = Encoding.UTF8.GetBytes(header);
        var data = new byte[8 + hb.Length + 8];
        BinaryPrimitives.WriteUInt64LittleEndian(data, (ulong)hb.Length);
        hb.CopyTo(data, 8);
        ushort[] vals = { 0x3F80, 0xC020, 0x3C00, 0xC100 };
        for (int i = 0; i < 4; i++) BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(8 + hb.Length + 2 * i), vals[i]);
        var c = Safetensors.Read(data);
        c.Tensors["b"].dtype.Should().Be(ScalarType.Float32);
        c.Tensors["b"].data<float>().ToArray().Should().Equal(1f, -2.5f);
        c.Tensors["h"].data<float>().ToArray().Should().Equal(1f, -2.5f);
    }

    [Fact]
    public void Truncated_and_corrupt_files_give_clear_errors()
    {
        var path = Path.Combine(_dir, "t.safetensors");
        Safetensors.Write(path, new Dictionary<string, Tensor> { ["w"] = ones(16) });
        var raw = File.ReadAllBytes(path);

        FluentActions.Invoking(() => Safetensors.Read(raw[..5], "x.st")).Should().Throw<InvalidDataException>().WithMessage("*x.st*truncated*");
        FluentActions.Invoking(() => Safetensors.Read(raw[..20], "x.st")).Should().Throw<InvalidDataException>().WithMessage("*header says*truncated*");
        FluentActions.Invoking(() => Safetensors.Read(raw[..^4], "x.st")).Should().Throw<InvalidDataException>().WithMessage("*'w'*outside*truncated*");

        var bad = (byte[])raw.Clone();
        bad[8] = (byte)'x';
        FluentActions.Invoking(() => Safetensors.Read(bad, "x.st")).Should().Throw<InvalidDataException>().WithMessage("*not a JSON object*");
        var huge = (byte[])raw.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(huge, ulong.MaxValue / 2);
        FluentActions.Invoking(() => Safetensors.Read(huge, "x.st")).Should().Throw<InvalidDataException>().WithMessage("*implausible*");
        FluentActions.Invoking(() => Safetensors.Read(Path.Combine(_dir, "missing.safetensors"))).Should().Throw<FileNotFoundException>();
        FluentActions.Invoking(() => Safetensors.Write(Path.Combine(_dir, "b.st"), new Dictionary<string, Tensor> { ["h"] = ones(2, dtype: float16) }))
            .Should().Throw<NotSupportedException>().WithMessage("*'h'*");
    }
}
