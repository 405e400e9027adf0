using System.Text;
using Ect.Data;

namespace Ect.Actors.Distributed;

/// <summary>The payloads of <see cref="Decision"/>s (little-endian BinaryWriter fields).</summary>
internal static class Packets
{
    /// <summary>The engine to build and the data set every rank opens itself (rank 0's full path, size and fingerprint).</summary>
    public sealed record EngineSpec(string ConfigHocon, int Resolution, int Channels, int LabelDim, string DataPath, int DataCount, string DataFingerprint);
    /// <summary>One step's decisions and where its global batch starts in the sampler's order (each rank assembles its own shard).</summary>
    public sealed record StepSpec(string Phase, int Stage, double LearningRate, SamplerState BatchStart);

    public static byte[] Engine(EngineSpec e) => Write(w =>
    {
        w.Write(e.ConfigHocon); w.Write(e.Resolution); w.Write(e.Channels); w.Write(e.LabelDim);
        w.Write(e.DataPath); w.Write(e.DataCount); w.Write(e.DataFingerprint);
    });
    public static EngineSpec Engine(byte[] p) => Read(p, r => new EngineSpec(r.ReadString(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadString(), r.ReadInt32(), r.ReadString()));

    public static byte[] Sync(string phase, byte[] state) => Write(w => { w.Write(phase); w.Write(state.Length); w.Write(state); });
    public static (string Phase, byte[] State) Sync(byte[] p) => Read(p, r => { var phase = r.ReadString(); var n = r.ReadInt32(); return (phase, r.ReadBytes(n)); });

    public static byte[] Digest(string digest) => Encoding.UTF8.GetBytes(digest);
    public static string Digest(byte[] p) => Encoding.UTF8.GetString(p);

    public static byte[] Finish(int exitCode) => BitConverter.GetBytes(exitCode);

    /// <summary>A few dozen bytes: no images travel (before issue 20's point 1 the whole global batch did).</summary>
    public static byte[] Step(StepSpec s) => Write(w =>
    {
        w.Write(s.Phase); w.Write(s.Stage); w.Write(s.LearningRate);
        w.Write(s.BatchStart.Epoch); w.Write(s.BatchStart.Position);
    });

    public static StepSpec Step(byte[] p) => Read(p, r => new StepSpec(r.ReadString(), r.ReadInt32(), r.ReadDouble(), new SamplerState(r.ReadInt64(), r.ReadInt64())));

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
