using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Bench;

/// <summary>
/// Can Winograd convolutions beat the fused multiply-add limit that bounds FD-ResNet18 extraction (issue 21 point 4)?
/// Winograd F(6x6, 3x3) does a 3x3 convolution with ~5x fewer multiplications, so it is the one known way past
/// `gemm-peak`'s rate. Neither ONNX Runtime (MLAS) nor oneDNN has it for AVX2; NNPACK does (its `wt8x8`), and
/// libtorch_cpu.so exports NNPACK's C API (nnp_convolution_output, nnp_convolution_inference). For ResNet-18's four
/// 3x3 shapes (224x224 input, batch 16, 1 thread) this runs: libtorch's convolution (oneDNN, direct), NNPACK wt8x8 on
/// the batch, and NNPACK wt8x8 image by image with the kernels' transforms computed once (what an extractor would do),
/// each as "GFLOP/s equivalent" (the direct convolution's FLOPs / time) and NNPACK's largest relative difference from
/// libtorch's output; then the convolutions weighted as in ResNet-18 (4, 3, 3, 3 of each shape) with the best of the
/// three per shape. Usage: winograd [--seconds S=1.5]
/// </summary>
public sealed unsafe class WinogradBench : IBenchmarkVerb
{
    public string Name => "winograd";
    public string Description => "NNPACK's Winograd F(6x6,3x3) vs libtorch's convolution on ResNet-18's 3x3 shapes (1 thread)";

    [StructLayout(LayoutKind.Sequential)] struct NnpSize { public nuint Width, Height; }
    [StructLayout(LayoutKind.Sequential)] struct NnpPadding { public nuint Top, Right, Bottom, Left; }

    // nnpack.h: nnp_convolution_algorithm_wt8x8 = 3; transform strategies precompute = 2, reuse = 3;
    // activation identity = 0; status success = 0. A null threadpool runs on the calling thread.
    const int Wt8x8 = 3, StrategyPrecompute = 2, StrategyReuse = 3;

    public int Run(string[] args)
    {
        var i = Array.IndexOf(args, "--seconds");
        var seconds = i >= 0 && i + 1 < args.Length ? double.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture) : 1.5;
        torch.set_num_threads(1);
        var lib = NativeLibrary.Load(Path.Combine(AppContext.BaseDirectory, "libtorch_cpu.so"));
        var init = (delegate* unmanaged<int>)NativeLibrary.GetExport(lib, "nnp_initialize");
        var output = (delegate* unmanaged<int, nuint, nuint, nuint, NnpSize, NnpPadding, NnpSize, float*, float*, float*, float*, void*, nuint*, int, void*, void*, void*, int>)
            NativeLibrary.GetExport(lib, "nnp_convolution_output");
        var inference = (delegate* unmanaged<int, int, nuint, nuint, NnpSize, NnpPadding, NnpSize, NnpSize, float*, float*, float*, float*, void*, nuint*, int, void*, void*, void*, int>)
            NativeLibrary.GetExport(lib, "nnp_convolution_inference");
        var status = init();
        Console.WriteLine($"winograd: NNPACK nnp_initialize -> {status} (0 = success); 1 thread; {seconds} s per measurement; load average {File.ReadAllText("/proc/loadavg").Trim()}");
        if (status != 0) { Console.WriteLine("NNPACK does not run on this CPU."); return 1; }

        const int batch = 16;
        var pad = new NnpPadding { Top = 1, Right = 1, Bottom = 1, Left = 1 };
        var kernel3 = new NnpSize { Width = 3, Height = 3 };
        var one = new NnpSize { Width = 1, Height = 1 };
        double[] time = new double[3], flopsTotal = new double[3];
        var best = 0.0;
        foreach (var (c, hw, count) in new[] { (64, 56, 4), (128, 28, 3), (256, 14, 3), (512, 7, 3) })
        {
            using var scope = torch.NewDisposeScope();
            var x = torch.randn(batch, c, hw, hw, generator: new Generator(3)).contiguous();
            var w = (torch.randn(c, c, 3, 3, generator: new Generator(4)) / MathF.Sqrt(9 * c)).contiguous();
            var b = torch.zeros(c);
            var reference = torch.nn.functional.conv2d(x, w, b, padding: [1, 1]);
            var flops = 2.0 * batch * c * c * 9 * hw * hw;
            var size = new NnpSize { Width = (nuint)hw, Height = (nuint)hw };
            // NNPACK's arguments as pinned copies of the tensors.
            float[] xs = x.data<float>().ToArray(), ws = w.data<float>().ToArray(), bs = new float[c], ys = new float[reference.numel()];
            var pins = new[] { xs, ws, bs, ys }.Select(a => GCHandle.Alloc(a, GCHandleType.Pinned)).ToArray();
            var px = (float*)pins[0].AddrOfPinnedObject();
            var pw = (float*)pins[1].AddrOfPinnedObject();
            var pb = (float*)pins[2].AddrOfPinnedObject();
            var py = (float*)pins[3].AddrOfPinnedObject();
            var y = () => torch.tensor(ys).reshape(reference.shape);
            var plane = c * hw * hw;
            void* transformed = null;
            try
            {
                var rateTorch = Rate(() => torch.nn.functional.conv2d(x, w, b, padding: [1, 1]).Dispose(), flops, seconds);
                var rateBatch = Rate(() => Check(output(Wt8x8, batch, (nuint)c, (nuint)c, size, pad, kernel3, px, pw, pb, py, null, null, 0, null, null, null)), flops, seconds);
                var errBatch = MaxRelative(y(), reference);

                // The kernels' transforms once (an extractor's weights are fixed), then image by image.
                nuint transformBytes = 0;
                Check(inference(Wt8x8, StrategyPrecompute, (nuint)c, (nuint)c, size, pad, kernel3, one, null, pw, null, null, null, &transformBytes, 0, null, null, null));
                transformed = NativeMemory.AlignedAlloc(transformBytes, 64);
                var bytes = transformBytes;
                Check(inference(Wt8x8, StrategyPrecompute, (nuint)c, (nuint)c, size, pad, kernel3, one, null, pw, null, null, transformed, &bytes, 0, null, null, null));
                Array.Clear(ys);
                var rateReuse = Rate(() =>
                {
                    for (var n = 0; n < batch; n++)
                        Check(inference(Wt8x8, StrategyReuse, (nuint)c, (nuint)c, size, pad, kernel3, one, px + n * plane, (float*)transformed, pb, py + n * plane,
                            null, null, 0, null, null, null));
                }, flops, seconds);
                var errReuse = MaxRelative(y(), reference);
                Console.WriteLine($"  conv3x3 {c,3} ch {hw,2}x{hw,-2} batch {batch}: libtorch {rateTorch,6:F1}  NNPACK wt8x8 batch {rateBatch,6:F1} (max rel. diff {errBatch:E1})  " +
                                  $"image by image, kernels transformed once ({transformBytes / 1048576} MiB) {rateReuse,6:F1} (max rel. diff {errReuse:E1}) GFLOP/s equivalent");
                var rates = new[] { rateTorch, rateBatch, rateReuse };
                for (var k = 0; k < 3; k++) { time[k] += count * flops / rates[k]; flopsTotal[k] += count * flops; }
                best += count * flops / rates.Max();
            }
            finally
            {
                if (transformed != null) NativeMemory.AlignedFree(transformed);
                foreach (var pin in pins) pin.Free();
            }
        }
        string[] names = ["libtorch (oneDNN)", "NNPACK wt8x8 batch", "NNPACK wt8x8 per image, kernels once"];
        for (var k = 0; k < 3; k++)
            Console.WriteLine($"  weighted as in ResNet-18 (4/3/3/3): {names[k],-38} {flopsTotal[k] / time[k],6:F1} GFLOP/s equivalent");
        Console.WriteLine($"  weighted, the best of the three per shape: {flopsTotal[0] / best,6:F1} GFLOP/s equivalent " +
                          "(compare `fd-resnet18 --compare 16 --vs-peak`'s GFLOP per CPU-second for the whole network)");
        return 0;
    }

    static void Check(int status)
    {
        if (status != 0) throw new InvalidOperationException($"NNPACK returned status {status}");
    }

    static double MaxRelative(Tensor y, Tensor reference)
    {
        using var scope = torch.NewDisposeScope();
        return ((y - reference).abs().max() / reference.abs().max()).item<float>();
    }

    static double Rate(Action op, double flop, double seconds)
    {
        op();
        var sw = Stopwatch.StartNew();
        var calls = 0;
        while (sw.Elapsed.TotalSeconds < seconds) { op(); calls++; }
        return flop * calls / sw.Elapsed.TotalSeconds / 1e9;
    }
}
