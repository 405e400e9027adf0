using System.Runtime.InteropServices;
using System.Text;
using Ect.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Actors.Distributed;

/// <summary>The payloads of <see cref="Decision"/>s (little-endian BinaryWriter fields).</summary>
internal static class Packets
{
    public sealed record EngineSpec(string ConfigHocon, int Resolution, int Channels, int LabelDim);
    public sealed record StepSpec(string Phase, int Stage, double LearningRate);

    public static byte[] Engine(EngineSpec e) => Write(w => { w.Write(e.ConfigHocon); w.Write(e.Resolution); w.Write(e.Channels); w.Write(e.LabelDim); });
    public static EngineSpec Engine(byte[] p) => Read(p, r => new EngineSpec(r.ReadString(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32()));

    public static byte[] Sync(string phase, byte[] state) => Write(w => { w.Write(phase); w.Write(state.Length); w.Write(state); });
    public static (string Phase, byte[] State) Sync(byte[] p) => Read(p, r => { var phase = r.ReadString(); var n = r.ReadInt32(); return (phase, r.ReadBytes(n)); });

    public static byte[] Digest(string digest) => Encoding.UTF8.GetBytes(digest);
    public static string Digest(byte[] p) => Encoding.UTF8.GetString(p);

    public static byte[] Finish(int exitCode) => BitConverter.GetBytes(exitCode);

    /// <summary>The step's decisions and the whole global batch (float32 images, then float32 labels when the run uses them).</summary>
    public static byte[] Step(StepSpec s, ImageBatch batch) => Write(w =>
    {
        w.Write(s.Phase); w.Write(s.Stage); w.Write(s.LearningRate);
        WriteTensor(w, batch.Images);
        w.Write(batch.Labels is not null);
        if (batch.Labels is { } l) WriteTensor(w, l);
    });

    public static (StepSpec Spec, ImageBatch Batch) Step(byte[] p) => Read(p, r =>
    {
        var spec = new StepSpec(r.ReadString(), r.ReadInt32(), r.ReadDouble());
        var images = ReadTensor(r);
        var labels = r.ReadBoolean() ? ReadTensor(r) : null;
        return (spec, new ImageBatch(images, labels, default));
    });

    private static void WriteTensor(BinaryWriter w, Tensor t)
    {
        if (t.dtype != ScalarType.Float32) throw new NotSupportedException($"a batch tensor of {t.dtype}; the packet carries float32");
        using var c = t.contiguous();
        w.Write(c.shape.Length);
        foreach (var d in c.shape) w.Write(d);
        w.Write(c.bytes);
    }

    private static Tensor ReadTensor(BinaryReader r)
    {
        var rank = r.ReadInt32();
        if (rank is < 1 or > 8) throw new InvalidDataException($"a batch tensor of rank {rank}");
        var shape = new long[rank];
        for (int i = 0; i < rank; i++) shape[i] = r.ReadInt64();
        var t = empty(shape, float32);
        var span = t.bytes;
        if (r.Read(span) != span.Length) throw new InvalidDataException("a truncated batch packet");
        return t;
    }

    private static byte[] Write(Action<BinaryWriter> write)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true)) write(w);
        return ms.ToArray();
    }

    private static T Read<T>(byte[] p, Func<BinaryReader, T> read)
    {
        using var r = new BinaryReader(new MemoryStream(p), Encoding.UTF8);
        return read(r);
    }
}
