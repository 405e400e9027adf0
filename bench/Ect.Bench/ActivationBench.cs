using System.Diagnostics;
using TorchSharp;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Ect.Bench;

/// <summary>
/// libtorch's elementwise activations on one activation-sized tensor, round after round in one process, to see how the
/// cost of each moves within a process (issue 21: `ect eval`'s generation is bimodal, and in slow runs Sleef's expf,
/// called by the silu and sigmoid kernels, takes 7-16% of all CPU samples, against 0.2% in fast ones).
/// Usage: activation [--threads T=2] [--rounds R=8] [--reps N=10] [--shape 100,32,32,32] [--offset-sweep]
/// Prints ns per element for each op in each round: silu (a new output, as the networks call it), silu in place,
/// sigmoid, sigmoid then an in-place multiply (x * sigmoid(x)), exp, relu (no exp: the memory-bound floor).
/// --offset-sweep: silu alone, its input moved across 4 KiB in 64-byte steps (is the cost a matter of where the input
/// lies relative to the output, 4K aliasing?). Measured 2026-12-03 (session 17): silu 0.28-0.32 ns at every offset in
/// a fast process. A scratch version (the same ops, once per process) gave silu 0.85-2.1 ns in 10 processes against
/// sigmoid's 0.14-0.29 on the same tensor; this verb shows a first round of 7-17 ns for silu (sometimes sigmoid too),
/// then 0.27-0.32. What moves it is not known yet (issue 21 note).
/// </summary>
public sealed class ActivationBench : IBenchmarkVerb
{
    [DllImport("LibTorchSharp")]
    static extern IntPtr THSStorage_data_ptr(IntPtr tensor);

    static long Address(Tensor t) => (long)THSStorage_data_ptr(t.Handle) + t.storage_offset() * 4;

    public string Name => "activation";
    public string Description => "silu/sigmoid/exp ns per element, round by round in one process (issue 21's bimodal SiLU)";

    public int Run(string[] args)
    {
        var threads = IntArg(args, "--threads", 2);
        var rounds = IntArg(args, "--rounds", 8);
        var reps = IntArg(args, "--reps", 10);
        var shape = (ArgValue(args, "--shape") ?? "100,32,32,32").Split(',').Select(long.Parse).ToArray();
        torch.set_num_threads(threads);
        if (args.Contains("--offset-sweep")) return OffsetSweep(shape, reps);
        using var x = torch.randn(shape, generator: new Generator(1)).mul_(2);
        using var scratch = x.clone();
        var ops = new (string Name, Action Op)[]
        {
            ("silu", () => nn.functional.silu(x).Dispose()),
            ("silu_", () => { scratch.copy_(x); nn.functional.silu(scratch, inplace: true); }),
            ("sigmoid", () => x.sigmoid().Dispose()),
            ("x*sigmoid", () => x.sigmoid().mul_(x).Dispose()),
            ("exp", () => x.exp().Dispose()),
            ("relu", () => nn.functional.relu(x).Dispose()),
        };
        Console.WriteLine($"activation: [{string.Join(",", shape)}] float32, {threads} thread(s), {rounds} rounds of {reps} calls per op; ns per element " +
                          "(silu_ includes a copy into its buffer)");
        Console.WriteLine($"  {"round",-6}" + string.Concat(ops.Select(o => $"{o.Name,11}")));
        for (int r = 1; r <= rounds; r++)
        {
            var line = $"  {r,-6}";
            foreach (var (_, op) in ops)
            {
                op();
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < reps; i++) op();
                line += $"{sw.Elapsed.TotalSeconds / reps / x.numel() * 1e9,11:F3}";
            }
            Console.WriteLine(line);
        }
        return 0;
    }

    // silu of an input placed at 64-byte steps across 4 KiB inside one buffer (the output comes from the same freed
    // block every call, so only the input moves): prints ns per element against the input's offset and the output's
    // distance from the input modulo 4096.
    static int OffsetSweep(long[] shape, int reps)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        using var big = torch.randn([n + 4096], generator: new Generator(1)).mul_(2);
        for (int off = 0; off < 1024; off += 16)
        {
            using var x = big.narrow(0, off, n).view(shape);
            nn.functional.silu(x).Dispose();
            long delta = 0;
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < reps; i++)
            {
                using var y = nn.functional.silu(x);
                delta = (Address(y) - Address(x)) % 4096;
            }
            Console.WriteLine($"  input offset {off * 4,5} B  (y - x) mod 4096 = {(delta + 4096) % 4096,5}  silu {sw.Elapsed.TotalSeconds / reps / n * 1e9:F3} ns/elem");
        }
        return 0;
    }

    static string? ArgValue(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    static int IntArg(string[] args, string name, int fallback) => ArgValue(args, name) is { } v ? int.Parse(v) : fallback;
}
