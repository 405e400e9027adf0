using System.Diagnostics;
using Ect.Compute.Evaluation;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Bench;

/// <summary>
/// FD-ResNet18 feature extraction throughput on small grey images (Fashion-MNIST 28x28, CIFAR-like 32x32), as used by
/// `ect eval`: preprocessing (resize to 224, BGR, mean image), ONNX Runtime ResNet-18 image by image, and the float64
/// statistics update, through <see cref="MetricRunner.ComputeStatistics"/>. Generation is not included.
/// Usage: fd-resnet18 [--images N=256] [--threads T=2] [--batch B=64] [--sizes 28,32] [--spin] [--native]
/// [--chunk C=16] [--opt all|extended] [--compare V1,V2,... [--rounds R=3] [--vs-peak]]
/// (--native: the network natively batched in TorchSharp; --chunk: images per ONNX Runtime call, 1 = the shipped model
/// image by image; --compare: alternate variants in one run, R rounds, each variant on the same images, then medians
/// and ratios to the first variant; a variant is a chunk size ("1", "16"), optionally ":extended" ("16:extended") and/or
/// ":planes" ("16:planes": grey images as three planes, without the first convolution's fold, OnnxGreyInput), "CxL" for
/// L lanes ("16x2": two sessions of one thread each running different chunks at once; "16x1": one session with all the
/// threads; no "xL": the extractor's default), or "native"; --vs-peak: also the matrix product between rounds and each
/// variant as a fraction of it, the hardware limit read in the same run).
/// </summary>
public sealed class FdResNet18Bench : IBenchmarkVerb
{
    public string Name => "fd-resnet18";
    public string Description => "FD-ResNet18 extraction img/s on 28x28/32x32 grey images, 10k-image estimate";

    public int Run(string[] args)
    {
        var images = IntArg(args, "--images", 256);
        var threads = IntArg(args, "--threads", 2);
        var batch = IntArg(args, "--batch", 64);
        var spin = args.Contains("--spin");
        var ort = !args.Contains("--native");
        var sizes = (ArgValue(args, "--sizes") ?? "28,32").Split(',').Select(int.Parse).ToArray();
        var chunk = IntArg(args, "--chunk", ResNet18OnnxExtractor.DefaultOnnxChunk);
        var opt = ArgValue(args, "--opt") ?? "all";
        torch.set_num_threads(threads);
        if (ArgValue(args, "--compare") is { } compare)
            return Compare(compare.Split(','), IntArg(args, "--rounds", 3), images, threads, batch, sizes[0], spin, args.Contains("--vs-peak"));
        Console.WriteLine($"fd-resnet18: {images} images per size, batch {batch}, {threads} threads (ONNX Runtime intra-op and torch), {(ort ? $"ONNX Runtime, {chunk} image(s) per call, optimization {opt}, spinning {(spin ? "on" : "off")}" : "native batched TorchSharp network")}, " +
                          $"{Environment.ProcessorCount} logical CPUs visible; load average {LoadAverage()}");
        using var fx = new ResNet18OnnxExtractor(intraOpThreads: threads, allowSpinning: spin, nativeNetwork: !ort, onnxChunk: chunk,
            optimization: Optimization(opt));
        // Warm-up: session initialisation and first-run allocations are not part of the steady state.
        using (var warm = torch.rand(8, 1, 28, 28) * 2 - 1) fx.ExtractFeatures(warm).Dispose();

        foreach (var size in sizes)
        {
            var gen = new torch.Generator(1234);
            Tensor Batch(int i) => torch.rand([Math.Min(batch, images - i * batch), 1, size, size], generator: gen) * 2 - 1;
            var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            var stats = MetricRunner.ComputeStatistics(
                Enumerable.Range(0, (images + batch - 1) / batch).Select(Batch), images, fx, $"{size}x{size}");
            sw.Stop();
            var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
            var perImage = sw.Elapsed.TotalSeconds / images;
            Console.WriteLine(
                $"  {size}x{size}x1: {images} images in {sw.Elapsed.TotalSeconds:F2} s = {1 / perImage:F1} img/s ({perImage * 1000:F2} ms/img); " +
                $"estimate for 10,000 images: {perImage * 10_000 / 60:F2} min (extraction + statistics only); N={stats.Count}, d={stats.Dimension}");
            // CPU time is less sensitive to other processes on a shared machine: with T threads busy, an idle machine needs
            // about cpu/T of wall time (an optimistic bound when the threads do not scale perfectly).
            Console.WriteLine(
                $"           process CPU time {cpu:F2} s = {cpu / images * 1000:F2} ms/img; if the {threads} threads had the cores to themselves: " +
                $"~{images / (cpu / threads):F1} img/s, 10,000 images in ~{cpu / threads / images * 10_000 / 60:F2} min");
        }

        // Share of the preprocessing (resize to 224, BGR, mean image) in the pipeline, measured on the same machine state;
        // three times (the first pays for first-touch page faults of the new buffers).
        for (var rep = 0; rep < 3; rep++)
        {
            using var x = torch.rand([batch, 1, 28, 28], generator: new torch.Generator(5)) * 2 - 1;
            var p0 = Process.GetCurrentProcess().TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            using (var p = fx.Preprocess(x)) { }
            var pre = sw.Elapsed.TotalSeconds;
            var preCpu = (Process.GetCurrentProcess().TotalProcessorTime - p0).TotalSeconds;
            p0 = Process.GetCurrentProcess().TotalProcessorTime;
            sw.Restart();
            using (var f = fx.ExtractFeatures(x)) { }
            var all = sw.Elapsed.TotalSeconds;
            var allCpu = (Process.GetCurrentProcess().TotalProcessorTime - p0).TotalSeconds;
            Console.WriteLine($"  breakdown, {batch} images 28x28: preprocessing {pre * 1000 / batch:F2} ms/img wall ({preCpu * 1000 / batch:F2} CPU), " +
                              $"preprocessing + ResNet-18 {all * 1000 / batch:F2} ms/img wall ({allCpu * 1000 / batch:F2} CPU)");
        }

        // The FD itself on 512-d statistics (two float64 eigendecompositions), once per evaluation.
        FeatureStatistics RandomStats(int seed)
        {
            using var acc = new FeatureStatisticsAccumulator(512);
            using var f = torch.randn([2000, 512], generator: new torch.Generator((ulong)seed));
            acc.Add(f);
            return acc.ToStatistics();
        }
        var (a, b) = (RandomStats(1), RandomStats(2));
        var c0 = Process.GetCurrentProcess().TotalProcessorTime;
        var t = Stopwatch.StartNew();
        var fd = FrechetDistance.Compute(a, b);
        Console.WriteLine($"  FrechetDistance (d=512, float64 eigh): {t.Elapsed.TotalMilliseconds:F0} ms wall, " +
                          $"{(Process.GetCurrentProcess().TotalProcessorTime - c0).TotalMilliseconds:F0} ms CPU (FD = {fd.Value:F3})");
        Console.WriteLine($"  load average after: {LoadAverage()}");
        return 0;
    }

    static GraphOptimizationLevel Optimization(string name) => name switch
    {
        "all" => GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended" => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic" => GraphOptimizationLevel.ORT_ENABLE_BASIC,
        _ => throw new ArgumentException($"--opt {name}: expected all, extended or basic."),
    };

    static ResNet18OnnxExtractor Variant(string v, int threads, bool spin)
    {
        if (v == "native") return new ResNet18OnnxExtractor(threads, allowSpinning: spin, nativeNetwork: true);
        var parts = v.Split(':');
        // ":planes" runs grey images as three equal planes, without the OnnxGreyInput fold of conv1 (the default folds);
        // "16x1": chunks of 16 in one session; "16x2": in 2 lanes (two sessions sharing the threads, running different
        // chunks at once); "16": the extractor's default (ResNet18OnnxExtractor.DefaultLanes).
        var chunkAndLanes = parts[0].Split('x');
        return new ResNet18OnnxExtractor(threads, allowSpinning: spin, onnxChunk: int.Parse(chunkAndLanes[0]),
            optimization: Optimization(parts.Skip(1).FirstOrDefault(p => p != "planes") ?? "all"), foldGreyInput: !parts.Contains("planes"),
            lanes: chunkAndLanes.Length > 1 ? int.Parse(chunkAndLanes[1]) : null);
    }

    // Alternating variants in one process on the same images: on a shared machine the other processes' load changes
    // over minutes, so ratios of neighbouring runs and CPU time per image say more than one run's img/s.
    static int Compare(string[] variants, int rounds, int images, int threads, int batch, int size, bool spin, bool vsPeak)
    {
        Console.WriteLine($"fd-resnet18 compare: {string.Join(" vs ", variants)}; {rounds} rounds of {images} images {size}x{size}x1, batch {batch}, " +
                          $"{threads} threads, spinning {(spin ? "on" : "off")}; {Environment.ProcessorCount} logical CPUs visible; load average {LoadAverage()}");
        var extractors = variants.Select(v => Variant(v, threads, spin)).ToArray();
        var wall = variants.Select(_ => new List<double>()).ToArray();
        var cpuPerImage = variants.Select(_ => new List<double>()).ToArray();
        // --vs-peak: this CPU's attainable rate, measured between the rounds (same machine state): libtorch's matrix
        // product (the better of 1024^3 and 2048^3) at 1 thread (against GFLOP per CPU-second) and at T threads.
        var peak1 = new List<double>();
        var peakT = new List<double>();
        try
        {
            // A whole batch: with lanes, 16 images would warm one lane's session only, and the other's first chunks
            // (arena growth, first-run kernel choices) would land in round 1.
            foreach (var fx in extractors)
                using (var warm = torch.rand(batch, 1, size, size) * 2 - 1) fx.ExtractFeatures(warm).Dispose();
            for (var r = 0; r < rounds; r++)
            {
                for (var k = 0; k < variants.Length; k++)
                {
                    var gen = new torch.Generator(1234);
                    Tensor Batch(int i) => torch.rand([Math.Min(batch, images - i * batch), 1, size, size], generator: gen) * 2 - 1;
                    var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                    var sw = Stopwatch.StartNew();
                    MetricRunner.ComputeStatistics(Enumerable.Range(0, (images + batch - 1) / batch).Select(Batch), images, extractors[k], "bench");
                    sw.Stop();
                    var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
                    wall[k].Add(images / sw.Elapsed.TotalSeconds);
                    cpuPerImage[k].Add(cpu / images * 1000);
                    Console.WriteLine($"  round {r + 1} {variants[k],-12} {images / sw.Elapsed.TotalSeconds,7:F1} img/s  {cpu / images * 1000,6:F2} ms CPU/img  " +
                                      $"(load {LoadAverage()})");
                }
                if (vsPeak)
                {
                    // The better of two sizes: 1024^3 fits the caches less well on some CPUs, 2048^3 on others.
                    peak1.Add(Math.Max(GemmPeakBench.MatmulRate(1, 1024, 2), GemmPeakBench.MatmulRate(1, 2048, 3)));
                    peakT.Add(Math.Max(GemmPeakBench.MatmulRate(threads, 1024, 2), GemmPeakBench.MatmulRate(threads, 2048, 3)));
                    Console.WriteLine($"  round {r + 1} matrix product (best of 1024^3, 2048^3): {peak1[^1]:F1} GFLOP/s at 1 thread, {peakT[^1]:F1} at {threads} (load {LoadAverage()})");
                }
            }
        }
        finally
        {
            foreach (var fx in extractors) fx.Dispose();
        }
        static double Median(List<double> x) { var s = x.Order().ToArray(); return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2; }
        for (var k = 0; k < variants.Length; k++)
        {
            var ratios = wall[k].Zip(wall[0], (a, b) => a / b).ToList();
            var cpuRatios = cpuPerImage[0].Zip(cpuPerImage[k], (a, b) => a / b).ToList();
            Console.WriteLine($"  {variants[k],-12} median {Median(wall[k]):F1} img/s, {Median(cpuPerImage[k]):F2} ms CPU/img; vs {variants[0]}: " +
                              $"img/s x{Median(ratios):F2} (per round {string.Join(" ", ratios.Select(x => x.ToString("F2")))}), " +
                              $"CPU per image {variants[0]}/this x{Median(cpuRatios):F2}; if {threads} cores were free: ~{threads * 1000 / Median(cpuPerImage[k]):F1} img/s, " +
                              $"10,000 images in ~{10_000 * Median(cpuPerImage[k]) / 1000 / threads / 60:F2} min; " +
                              // Against `Ect.Bench gemm-peak`'s 1-thread rates: how near the engine is to this CPU's limit.
                              $"{GemmPeakBench.ResNet18GflopPerImage * 1000 / Median(cpuPerImage[k]):F1} GFLOP per CPU-second " +
                              $"(ResNet-18's nominal {GemmPeakBench.ResNet18GflopPerImage} GFLOP per image)");
            if (vsPeak)
            {
                // The limit for T cores is T x the 1-thread rate (lanes run one thread each; libtorch's own T-thread
                // product scales worse at this size, so it is printed but not used as the limit).
                var limit = Math.Max(Median(peakT), threads * Median(peak1));
                Console.WriteLine($"  {variants[k],-12} against the matrix product in the same run: " +
                                  $"{GemmPeakBench.ResNet18GflopPerImage * 1000 / Median(cpuPerImage[k]):F1} GFLOP per CPU-second = " +
                                  $"{GemmPeakBench.ResNet18GflopPerImage * 1000 / Median(cpuPerImage[k]) / Median(peak1):P0} of 1 thread's {Median(peak1):F1} GFLOP/s; " +
                                  $"wall {Median(wall[k]) * GemmPeakBench.ResNet18GflopPerImage:F1} GFLOP/s = {Median(wall[k]) * GemmPeakBench.ResNet18GflopPerImage / limit:P0} of " +
                                  $"{limit:F1} ({threads} threads: {Median(peakT):F1}; {threads} x 1 thread: {threads * Median(peak1):F1}); " +
                                  $"at the matrix product's rate {threads} cores allow at most ~{limit / GemmPeakBench.ResNet18GflopPerImage:F1} img/s");
            }
        }
        return 0;
    }

    static string LoadAverage()
    {
        try { return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "n/a"; }
    }

    static string? ArgValue(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    static int IntArg(string[] args, string name, int fallback) =>
        ArgValue(args, name) is { } v ? int.Parse(v) : fallback;
}
