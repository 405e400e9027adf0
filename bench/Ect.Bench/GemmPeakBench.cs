using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Bench;

/// <summary>
/// What this CPU's floating point can actually do, so that an extraction rate can be read against the hardware's limit
/// (issue 21 point 4): libtorch's single-precision matrix product (n x n x n) and ResNet-18's own 3x3 convolutions
/// (libtorch's oneDNN path, batch 16, the four stages' shapes at 224x224 input), each at 1 and at T threads, in GFLOP/s
/// (2 FLOP per multiply-add). ResNet-18 at 224x224 is 1.82 G multiply-adds = 3.64 GFLOP per image, so the best
/// extraction rate any engine can reach is about (the convolutions' GFLOP/s) / 3.64 images per second.
/// `fd-resnet18 --compare` prints its engines' GFLOP per CPU-second to read against the 1-thread rates here.
/// Usage: gemm-peak [--threads T=2] [--seconds S=2]
/// </summary>
public sealed class GemmPeakBench : IBenchmarkVerb
{
    public string Name => "gemm-peak";
    public string Description => "attainable GFLOP/s (matrix product, ResNet-18's 3x3 convolutions) at 1 and T threads";

    /// <summary>ResNet-18's multiply-adds per 224x224 image (torchvision's count), times 2.</summary>
    public const double ResNet18GflopPerImage = 3.64;

    public int Run(string[] args)
    {
        var threads = IntArg(args, "--threads", 2);
        var seconds = double.Parse(ArgValue(args, "--seconds") ?? "2", System.Globalization.CultureInfo.InvariantCulture);
        Console.WriteLine($"gemm-peak: {Environment.ProcessorCount} logical CPUs visible; {seconds} s per measurement; " +
                          $"load average {File.ReadAllText("/proc/loadavg").Trim()}");
        foreach (var t in threads == 1 ? new[] { 1 } : new[] { 1, threads })
        {
            torch.set_num_threads(t);
            foreach (var n in new[] { 512, 1024, 2048 })
            {
                using var a = torch.randn(n, n, generator: new Generator(1));
                using var b = torch.randn(n, n, generator: new Generator(2));
                var rate = Rate(() => torch.mm(a, b), 2.0 * n * n * n, seconds);
                Console.WriteLine($"  {t} thread(s)  mm {n}x{n}x{n}: {rate:F1} GFLOP/s");
            }
            // ResNet-18's stages at 224x224: 64 ch at 56x56, 128 at 28, 256 at 14, 512 at 7 (3x3, stride 1, padding 1).
            var total = 0.0;
            var flops = 0.0;
            foreach (var (c, hw, count) in new[] { (64, 56, 4), (128, 28, 3), (256, 14, 3), (512, 7, 3) })
            {
                using var x = torch.randn(16, c, hw, hw, generator: new Generator(3));
                using var w = torch.randn(c, c, 3, 3, generator: new Generator(4));
                var f = 2.0 * 16 * c * c * 9 * hw * hw;
                var rate = Rate(() => torch.nn.functional.conv2d(x, w, padding: [1, 1]), f, seconds);
                Console.WriteLine($"  {t} thread(s)  conv3x3 {c} ch {hw}x{hw}, batch 16: {rate:F1} GFLOP/s");
                total += count * f / rate;
                flops += count * f;
            }
            var convRate = flops / total;
            Console.WriteLine($"  {t} thread(s)  the 3x3 convolutions, weighted as in ResNet-18: {convRate:F1} GFLOP/s -> at most " +
                              $"~{convRate / ResNet18GflopPerImage:F1} img/s for FD-ResNet18 at this rate ({ResNet18GflopPerImage} GFLOP per image)");
        }
        return 0;
    }

    /// <summary>libtorch's n x n x n matrix product at <paramref name="threads"/> threads, in GFLOP/s (restores the thread
    /// count). `fd-resnet18 --compare --vs-peak` measures it between its rounds, to read extraction against it.</summary>
    public static double MatmulRate(int threads, int n, double seconds)
    {
        var before = torch.get_num_threads();
        torch.set_num_threads(threads);
        try
        {
            using var a = torch.randn(n, n, generator: new Generator(1));
            using var b = torch.randn(n, n, generator: new Generator(2));
            return Rate(() => torch.mm(a, b), 2.0 * n * n * n, seconds);
        }
        finally
        {
            torch.set_num_threads(before);
        }
    }

    /// <summary>GFLOP/s of <paramref name="op"/> (one warm-up call, then calls until <paramref name="seconds"/> pass).</summary>
    static double Rate(Func<Tensor> op, double flop, double seconds)
    {
        op().Dispose();
        var sw = Stopwatch.StartNew();
        var calls = 0;
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            using var scope = torch.NewDisposeScope();
            op();
            calls++;
        }
        return flop * calls / sw.Elapsed.TotalSeconds / 1e9;
    }

    static int IntArg(string[] a, string name, int def) => ArgValue(a, name) is { } v ? int.Parse(v) : def;
    static string? ArgValue(string[] a, string name) { var i = Array.IndexOf(a, name); return i >= 0 && i + 1 < a.Length ? a[i + 1] : null; }
}
