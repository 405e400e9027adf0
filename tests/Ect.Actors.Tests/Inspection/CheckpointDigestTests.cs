using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Ect.Actors.Cli;
using FluentAssertions;
using Xunit;
using Ect.Actors.Checkpoints;

namespace Ect.Actors.Tests.Inspection;

[Collection("Console")]
public sealed class CheckpointDigestTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-inspect-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private sealed record T(string Name, string DType, long[] Shape, byte[] Data);

    /// <summary>Writes a safetensors file with the tensors in the given order (the format allows any order).</summary>
    private string Write(string file, IEnumerable<T> tensors, Dictionary<string, string>? metadata = null, int padding = 0)
    {
        var header = new Dictionary<string, object>();
        if (metadata is not null) header["__metadata__"] = metadata;
        long offset = 0;
        var list = tensors.ToList();
        foreach (var t in list)
        {
            header[t.Name] = new { dtype = t.DType, shape = t.Shape, data_offsets = new[] { offset, offset + t.Data.Length } };
            offset += t.Data.Length;
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header) + new string(' ', padding));
        var path = Path.Combine(_dir, file);
        using var fs = File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, json.Length);
        fs.Write(len);
        fs.Write(json);
        foreach (var t in list) fs.Write(t.Data);
        return path;
    }

    private static byte[] Floats(params float[] v) => v.SelectMany(BitConverter.GetBytes).ToArray();

    private static List<T> Checkpoint(float w0 = 1.5f) =>
    [
        new("net/enc.conv.weight", "F32", [2, 2], Floats(w0, -2f, 3.25f, 0f)),
        new("net/enc.conv.bias", "F32", [2], Floats(0.5f, -0.5f)),
        new("ema/enc.conv.weight", "F32", [2, 2], Floats(1f, -2f, 3f, 0.125f)),
        new("ema/enc.conv.bias", "F32", [2], Floats(0.25f, -0.25f)),
        new("optimizer/step", "I64", [1], BitConverter.GetBytes(1234L)),
        new("rng", "U8", [4], [1, 2, 3, 4]),
    ];

    private static Dictionary<string, string> Meta(string step = "1234") => new()
    {
        ["ect.format"] = "ect-train-state/1", ["ect.step"] = step, ["ect.images"] = "78976", ["ect.stage"] = "3",
        ["user.phase"] = "ect", ["user.config-digest"] = "cfg-abc123",
    };

    [Fact]
    public void Equal_tensors_in_another_order_with_other_metadata_give_equal_digests()
    {
        var a = CheckpointSummary.Of(Write("a.safetensors", Checkpoint(), Meta()));
        var shuffled = Checkpoint();
        shuffled.Reverse();
        var b = CheckpointSummary.Of(Write("b.safetensors", shuffled, new() { ["something"] = "else" }, padding: 13));

        a.WeightsDigest.Should().MatchRegex("^[0-9a-f]{64}$");
        b.WeightsDigest.Should().Be(a.WeightsDigest);
        b.EmaDigest.Should().Be(a.EmaDigest);
        b.GroupDigests.Should().Equal(a.GroupDigests);
        a.EmaDigest.Should().NotBe(a.WeightsDigest);
    }

    [Fact]
    public void One_changed_byte_changes_only_that_groups_digest()
    {
        var a = CheckpointSummary.Of(Write("a.safetensors", Checkpoint(), Meta()));
        var changed = Checkpoint();
        changed[0].Data[0] ^= 1;
        var b = CheckpointSummary.Of(Write("b.safetensors", changed, Meta()));
        b.WeightsDigest.Should().NotBe(a.WeightsDigest);
        b.EmaDigest.Should().Be(a.EmaDigest);
    }

    [Fact]
    public void Renamed_tensor_or_changed_shape_changes_the_digest()
    {
        var a = CheckpointSummary.Of(Write("a.safetensors", Checkpoint(), Meta()));
        var renamed = Checkpoint();
        renamed[1] = renamed[1] with { Name = "net/enc.conv.bias2" };
        CheckpointSummary.Of(Write("b.safetensors", renamed)).WeightsDigest.Should().NotBe(a.WeightsDigest);
        var reshaped = Checkpoint();
        reshaped[0] = reshaped[0] with { Shape = [4, 1] };
        CheckpointSummary.Of(Write("c.safetensors", reshaped)).WeightsDigest.Should().NotBe(a.WeightsDigest);
    }

    [Fact]
    public void Metadata_gives_phase_step_kimg_stage_and_config_digest()
    {
        var s = CheckpointSummary.Of(Write("a.safetensors", Checkpoint(), Meta()));
        (s.Phase, s.Step, s.Kimg, s.Stage, s.ConfigDigest).Should().Be(("ect", 1234L, 78.976, 3, "cfg-abc123"));
        s.TensorCount.Should().Be(6);
        s.GroupDigests.Keys.Should().BeEquivalentTo("net", "ema", "optimizer", "");
    }

    [Fact]
    public void The_daemons_run_counters_win_over_the_train_steps()
    {
        // In tuning the TrainStep restarts its own count (ect.step) while the run's step (user.step) goes on.
        var meta = Meta("1");
        meta["user.step"] = "3";
        meta["user.kimg"] = "0.096";
        var s = CheckpointSummary.Of(Write("a.safetensors", Checkpoint(), meta));
        (s.Step, s.Kimg).Should().Be((3L, 0.096));
    }

    [Fact]
    public void Corrupt_files_are_reported_by_name()
    {
        var path = Path.Combine(_dir, "bad.safetensors");
        File.WriteAllBytes(path, [255, 255, 0, 0, 0, 0, 0, 0, 1, 2]);
        var act = () => SafetensorsFile.Open(path);
        act.Should().Throw<InvalidDataException>().WithMessage($"*{path}*header length*");

        var truncated = Write("t.safetensors", Checkpoint(), Meta());
        var bytes = File.ReadAllBytes(truncated);
        File.WriteAllBytes(truncated, bytes[..^3]);
        act = () => SafetensorsFile.Open(truncated);
        act.Should().Throw<InvalidDataException>().WithMessage("*data_offsets*");
    }

    [Theory]
    [InlineData("{\"__metadata__\":[1],\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "__metadata__")]
    [InlineData("{\"__metadata__\":null}", "__metadata__")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", "'w'")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1,-4],\"data_offsets\":[0,4]}}", "negative")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "twice")]
    [InlineData("{\"w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", "'w'")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "'w'")]
    [InlineData("{\"w\":[]}", "'w'")]
    public void A_hostile_header_is_refused_as_a_bad_file_naming_it(string header, string named)
    {
        // Each of these used to end in another exception type (InvalidOperationException from a metadata array) or,
        // for the shape whose element count wraps to 0, in an entry that "read".
        var path = Path.Combine(_dir, "hostile.safetensors");
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + 4];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, json.Length);
        json.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
        var act = () => SafetensorsFile.Open(path);
        act.Should().Throw<InvalidDataException>().WithMessage($"*{path}*").And.Message.Should().Contain(named);
    }

    [Fact]
    public void Inspect_verb_on_a_run_dir_shows_the_latest_checkpoint()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "checkpoints"));
        Write("checkpoints/ckpt-a.safetensors", Checkpoint(), Meta("1000"));
        var latest = Write("checkpoints/ckpt-b.ckpt", Checkpoint(2f), Meta("2000"));
        File.WriteAllBytes(Path.Combine(_dir, "checkpoints", "ckpt-c.ckpt.tmp"), [1, 2, 3]); // in-flight write: ignored
        File.SetLastWriteTimeUtc(latest, DateTime.UtcNow.AddHours(-1)); // the step decides, not the time
        var expected = CheckpointSummary.Of(latest);

        var (o, e) = (Console.Out, Console.Error);
        var sw = new StringWriter();
        Console.SetOut(sw);
        int code;
        try { code = Program.Main(["inspect", _dir]); }
        finally { Console.SetOut(o); Console.SetError(e); }

        code.Should().Be(0);
        var text = sw.ToString();
        text.Should().Contain("ckpt-b.ckpt").And.Contain("2000").And.Contain(expected.WeightsDigest!)
            .And.Contain(expected.EmaDigest!).And.Contain("cfg-abc123");
    }

    [Fact]
    public void Inspect_verb_on_a_missing_file_exits_1_with_the_name()
    {
        var (o, e) = (Console.Out, Console.Error);
        var ew = new StringWriter();
        Console.SetError(ew);
        int code;
        try { code = InspectVerb.Run(Path.Combine(_dir, "none.safetensors"), false); }
        finally { Console.SetOut(o); Console.SetError(e); }
        code.Should().Be(1);
        ew.ToString().Should().Contain("none.safetensors").And.Contain("does not exist");
    }
}
