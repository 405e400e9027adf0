using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Ect.Compute.IO;
using FluentAssertions;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.IO;

/// <summary>
/// A safetensors header written by someone else is hostile input: every field of the wrong JSON kind, a size that
/// overflows, a repeated name, and a few thousand seeded byte substitutions must each end in either a file that
/// reads or an InvalidDataException naming the file (what every caller -- resume, `ect inspect`, `ect eval`,
/// network init -- reports as a bad file), never another exception type (which those callers do not expect).
/// </summary>
public class SafetensorsHostileHeaderTests
{
    private const string Source = "hostile.safetensors";

    private static readonly string[] HostileValues =
    [
        "null", "true", "1.5", "-1", "0", "\"x\"", "\"F32\"", "[]", "{}", "[null]", "[\"1\"]", "[1.5]", "[-1]", "[1e30]",
        "[4294967296,4294967296]", "[9223372036854775807,2]", "[0,9223372036854775807]", "[-4,-1]", "[[1]]", "[{}]",
        "{\"a\":1}", "18446744073709551616", "[1,2,3]",
    ];

    /// <summary>A valid header (two tensors and metadata) over 24 data bytes.</summary>
    private static JsonObject ValidHeader() => new()
    {
        ["__metadata__"] = new JsonObject { ["format"] = "pt" },
        ["w"] = new JsonObject { ["dtype"] = "F32", ["shape"] = new JsonArray(2, 2), ["data_offsets"] = new JsonArray(0, 16) },
        ["b"] = new JsonObject { ["dtype"] = "I32", ["shape"] = new JsonArray(2), ["data_offsets"] = new JsonArray(16, 24) },
    };

    private static byte[] File(string headerJson, int dataBytes = 24)
    {
        var hb = Encoding.UTF8.GetBytes(headerJson);
        var data = new byte[8 + hb.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(data, (ulong)hb.Length);
        hb.CopyTo(data, 8);
        for (int i = 8 + hb.Length; i < data.Length; i++) data[i] = (byte)i;
        return data;
    }

    /// <summary>Reads the bytes; null when they read, else the exception. Tensors that were read are disposed.</summary>
    private static Exception? Outcome(byte[] file)
    {
        try
        {
            foreach (var t in Safetensors.Read(file, Source).Tensors.Values) t.Dispose();
            return null;
        }
        catch (Exception e) { return e; }
    }

    private static void ShouldReadOrRefuseClearly(byte[] file, string what)
    {
        var e = Outcome(file);
        if (e is null) return;
        e.Should().BeOfType<InvalidDataException>($"{what} must be refused as a bad file, not with {e.GetType().Name}: {e.Message}");
        e.Message.Should().Contain(Source, what);
    }

    [Fact]
    public void The_valid_header_reads()
    {
        Outcome(File(ValidHeader().ToJsonString())).Should().BeNull("the base of the mutations must itself be a good file");
    }

    [Fact]
    public void Every_field_of_the_wrong_kind_is_refused_as_a_bad_file()
    {
        var cases = 0;
        foreach (var hostile in HostileValues)
        {
            foreach (var (entry, field) in new (string, string?)[]
                     {
                         ("w", "dtype"), ("w", "shape"), ("w", "data_offsets"), ("b", "shape"), ("b", "data_offsets"),
                         ("__metadata__", "format"), ("__metadata__", null), ("w", null),
                     })
            {
                var header = ValidHeader();
                if (field is null) header[entry] = JsonNode.Parse(hostile);
                else header[entry]!.AsObject()[field] = JsonNode.Parse(hostile);
                ShouldReadOrRefuseClearly(File(header.ToJsonString()), $"{entry}.{field ?? "(entry)"} = {hostile}");
                cases++;
            }
            ShouldReadOrRefuseClearly(File(hostile), $"the whole header = {hostile}");
            cases++;
        }
        cases.Should().Be(HostileValues.Length * 9);
    }

    [Fact]
    public void Sizes_that_overflow_or_are_negative_are_refused_and_allocate_nothing()
    {
        // 2^32 x 2^32 float32 elements: the product wraps to 0 in unchecked 64-bit arithmetic, which would match
        // data_offsets [0, 0] and ask libtorch for an exabyte-sized tensor.
        foreach (var (shape, offsets) in new[]
                 {
                     ("[4294967296,4294967296]", "[0,0]"), ("[4611686018427387904,4]", "[0,0]"), ("[-2,-2]", "[0,16]"),
                     ("[-1,0]", "[0,0]"),
                 })
        {
            var json = $"{{\"w\":{{\"dtype\":\"F32\",\"shape\":{shape},\"data_offsets\":{offsets}}}}}";
            var e = Outcome(File(json, 16));
            e.Should().BeOfType<InvalidDataException>($"shape {shape}").Which.Message.Should().Contain("'w'").And.Contain(Source);
        }
    }

    [Fact]
    public void A_repeated_tensor_name_is_refused()
    {
        var json = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
        ShouldReadOrRefuseClearly(File(json, 8), "a repeated name");
    }

    [Fact]
    public void Seeded_byte_substitutions_in_the_header_read_or_are_refused_as_a_bad_file()
    {
        var valid = File(ValidHeader().ToJsonString());
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(valid);
        const string alphabet = "{}[],:\"0123456789-+.eE tnfulrsa\\\0\u00ff";
        var rng = new Random(20261203);
        int refused = 0, read = 0;
        for (int i = 0; i < 3000; i++)
        {
            var file = (byte[])valid.Clone();
            int edits = 1 + rng.Next(3);
            for (int k = 0; k < edits; k++) file[8 + rng.Next(headerEnd - 8)] = (byte)alphabet[rng.Next(alphabet.Length)];
            var what = $"mutation {i}: {Encoding.UTF8.GetString(file, 8, headerEnd - 8)}";
            ShouldReadOrRefuseClearly(file, what);
            if (Outcome(file) is null) read++; else refused++;
        }
        refused.Should().BeGreaterThan(1000, "most substitutions break the header, so the loop did exercise the refusals");
        read.Should().BeGreaterThan(0, "some substitutions (inside a name or the metadata value) leave a readable file");
    }
}
