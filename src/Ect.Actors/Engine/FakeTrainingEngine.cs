using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Ect.Actors.Engine;

/// <summary>
/// A fast, deterministic arithmetic stand-in for the real training engine, with the same contract: weights,
/// EMA, momentum and an RNG that a step updates from the batch, saved and restored bit-exactly. It lets the
/// daemon's exact-resume, checkpoint and kill behaviour be tested in seconds. Its "loss" decreases.
/// </summary>
public sealed class FakeTrainingEngine : ITrainingEngine, IDescribed
{
    private readonly float[] _w, _ema, _m;
    private ulong _rng;
    private string _phase = Phases.Pretrain;
    private int _stage;
    private double _lr = 1e-3;
    private readonly double _beta;
    private readonly int _stepMs;
    private long _steps;
    private readonly long _nanAtStep;
    private readonly StrongBox<bool> _nanFired;
    private bool _returnedNan;
    private static readonly StrongBox<bool> ProcessNanFired = new();
    private readonly int _writeMs, _evalMs;

    public FakeTrainingEngine(long seed, int parameters, double emaBeta, int stepMs = 0, long nanAtStep = 0, int writeMs = 0, int evalMs = 0, StrongBox<bool>? nanFired = null)
    {
        _w = new float[parameters]; _ema = new float[parameters]; _m = new float[parameters];
        _rng = FakeBatchSource.Hash((ulong)seed, 1, 2) | 1;
        for (int i = 0; i < parameters; i++) _w[i] = _ema[i] = (float)(NextGaussian() * 0.1);
        _beta = emaBeta; _stepMs = stepMs; _nanAtStep = nanAtStep; _writeMs = writeMs; _evalMs = evalMs; _nanFired = nanFired ?? ProcessNanFired;
    }

    public string Description => FormattableString.Invariant(
        $"the fake engine (arithmetic stand-in for tests, no network): {_w.Length:N0} parameters, {_stepMs} ms per step");

    public void SetPhase(string phase) => _phase = phase;
    public void SetStage(int stage) => _stage = stage;
    public void SetLearningRate(double lr) => _lr = lr;

    public EngineStepResult Step(Batch batch)
    {
        var sw = Stopwatch.StartNew();
        var x = (float[])batch.Payload;
        int n = _w.Length;
        double loss = 0;
        // The phase and stage change the "loss" as they do for the real engine, so that a wrongly restored
        // phase or stage would change the bits.
        float target = _phase == Phases.Tuning ? 0.5f / (1 + _stage) : 1f;
        for (int i = 0; i < n; i++)
        {
            float g = _w[i] - target * x[i % x.Length] + (float)(0.01 * NextGaussian());
            loss += g * g;
            _m[i] = 0.9f * _m[i] + 0.1f * g;
            _w[i] -= (float)_lr * 10 * _m[i];
            _ema[i] = (float)(_beta * _ema[i] + (1 - _beta) * _w[i]);
        }
        _steps++;
        loss /= n;
        // Non-finite losses from nan-at-step on in this engine incarnation; the engine created after a rollback is healthy.
        if (_nanAtStep > 0 && !_nanFired.Value && _steps >= _nanAtStep) { _returnedNan = true; loss = double.NaN; }
        // Busy-wait (not Sleep) so that a step costs CPU like a real one.
        while (sw.Elapsed.TotalMilliseconds < _stepMs) Thread.SpinWait(200);
        return new EngineStepResult(loss, batch.Count);
    }

    private double NextGaussian()
    {
        double u1 = (NextU64() >> 11) * (1.0 / (1UL << 53)) + 1e-300, u2 = (NextU64() >> 11) * (1.0 / (1UL << 53));
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    private ulong NextU64()
    {
        _rng ^= _rng << 13; _rng ^= _rng >> 7; _rng ^= _rng << 17;
        return _rng;
    }

    public ICheckpointImage Capture(IReadOnlyDictionary<string, string> metadata) =>
        new Image((float[])_w.Clone(), (float[])_ema.Clone(), (float[])_m.Clone(), _rng, _steps, _writeMs, metadata.ToDictionary());

    public IReadOnlyDictionary<string, string> LoadCheckpoint(string path)
    {
        using var f = File.OpenRead(path);
        using var r = new BinaryReader(f);
        if (r.ReadUInt32() != 0xEC7FA4E1) throw new InvalidDataException($"{path}: not a fake-engine checkpoint");
        var meta = JsonSerializer.Deserialize<Dictionary<string, string>>(r.ReadString())!;
        _rng = r.ReadUInt64(); _steps = r.ReadInt64();
        foreach (var a in new[] { _w, _ema, _m })
        {
            if (r.ReadInt32() != a.Length) throw new InvalidDataException($"{path}: parameter count differs");
            for (int i = 0; i < a.Length; i++) a[i] = r.ReadSingle();
        }
        return meta;
    }

    /// <summary>The metadata of a fake-engine checkpoint without loading it, or null when the file is not one.</summary>
    public static IReadOnlyDictionary<string, string>? ReadMetadata(string path)
    {
        using (var f = File.OpenRead(path))
        using (var r = new BinaryReader(f))
            if (f.Length < 4 || r.ReadUInt32() != Checkpoints.CheckpointMetadata.FakeMagic) return null;
        return Checkpoints.CheckpointMetadata.ReadOrThrow(path);
    }

    private sealed record Image(float[] W, float[] Ema, float[] M, ulong Rng, long Steps, int WriteMs, Dictionary<string, string> Metadata) : ICheckpointImage
    {
        public void WriteTo(string path)
        {
            using var f = new FileStream(path, FileMode.Create, FileAccess.Write);
            using var w = new BinaryWriter(f);
            w.Write(0xEC7FA4E1u);
            w.Write(JsonSerializer.Serialize(new SortedDictionary<string, string>(Metadata)));
            w.Write(Rng); w.Write(Steps);
            foreach (var a in new[] { W, Ema, M })
            {
                w.Write(a.Length);
                foreach (var v in a) w.Write(v);
                // A slow disk, so that tests can kill the process in the middle of a checkpoint write.
                if (WriteMs > 0) { w.Flush(); Thread.Sleep(WriteMs / 3); }
            }
        }

        public void Dispose() { }
    }

    public IEvaluationModel CaptureEma() => new EmaModel((float[])_ema.Clone(), _evalMs);

    private sealed class EmaModel(float[] ema, int evalMs) : IEvaluationModel
    {
        public int Channels => 1;
        public int Resolution => 8;

        public float[] Generate(int count, int samplingSteps, int seed, double tMax, double midT, int firstImage = 0, Ect.Actors.Evaluation.ClassLabels? classes = null)
        {
            if (evalMs > 0) Thread.Sleep(evalMs);
            var img = new float[count * 64];
            var rng = new Random(seed);
            for (int i = 0; i < img.Length; i++)
                img[i] = Math.Clamp(ema[i % ema.Length] * samplingSteps + (float)(rng.NextDouble() - 0.5) * 0.1f, -1f, 1f);
            return img;
        }

        public void Dispose() { }
    }

    public string WeightsDigest() => Digest(_w);
    public string EmaDigest() => Digest(_ema);

    private static string Digest(float[] a)
    {
        var bytes = new byte[a.Length * 4];
        for (int i = 0; i < a.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), a[i]);
        return Convert.ToHexStringLower(SHA256.HashData(bytes));
    }

    public void Dispose() { if (_returnedNan) _nanFired.Value = true; }
}
