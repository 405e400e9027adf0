using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using Ect.Compute.Networks;
using Ect.Compute.Preconditioning;
using Ect.Compute.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Bench;

/// <summary>
/// Where a 1-step sample of the bench network spends its time, module by module, in eval mode under no_grad, with the
/// float64 input ConsistencySampler gives: the preconditioning coefficients (c_skip, c_out, c_in, c_noise), the noise
/// embedding and mapping layers, every encoder/decoder module on its own (random inputs of the shapes the forward
/// gives it), the whole U-Net, the whole preconditioned denoiser and the sampler. Prints one "PROFILE name
/// median_ms=X cpu_ms=Y" line per part (medians over reps after warm-up; on a loaded
/// machine the process CPU time at 1 thread is the steadier measure) and, with dtypes=1, the dtype and shape of every
/// intermediate the forward reports, so that two builds can be compared line by line (issue 21: the 1-thread sampling
/// regression of the Scalar-lifetime commit). Args: batch=32 reps=10 warmup=3 threads=1 dtypes=0.
/// </summary>
public sealed class SampleProfileBench : IBenchmarkVerb
{
    public string Name => "sample-profile";
    public string Description => "per-module times of a 1-step sample of the bench network (args: batch=32 reps=10 warmup=3 threads=1 dtypes=0)";

    public int Run(string[] args)
    {
        int batch = int.Parse(BenchNetwork.Arg(args, "batch", "32"), CultureInfo.InvariantCulture);
        int reps = int.Parse(BenchNetwork.Arg(args, "reps", "10"), CultureInfo.InvariantCulture);
        int warmup = int.Parse(BenchNetwork.Arg(args, "warmup", "3"), CultureInfo.InvariantCulture);
        int threads = int.Parse(BenchNetwork.Arg(args, "threads", "1"), CultureInfo.InvariantCulture);
        bool dtypes = BenchNetwork.Arg(args, "dtypes", "0") == "1";
        torch.set_num_threads(threads);
        torch.random.manual_seed(0);
        using var net = new EctPrecond(BenchNetwork.Config());
        net.eval();
        using var noGrad = no_grad();
        var unet = net.Model;
        Console.WriteLine($"sample-profile: batch {batch}, {threads} thread(s), {reps} timed repeats after {warmup} warm-up; load average {File.ReadAllText("/proc/loadavg").Trim()}");

        const double tMax = 80.0;
        using var g = new Generator(1);
        using var z = randn(new long[] { batch, BenchNetwork.Channels, BenchNetwork.Resolution, BenchNetwork.Resolution }, generator: g);
        using var z64 = z.to(float64);
        using var tMaxScalar = tMax.ToScalar();
        using var x64 = z64.mul(tMaxScalar);
        using var sigma64 = tensor(tMax, dtype: float64);
        using var x32 = x64.to(float32);
        using var s = sigma64.to(float32).reshape(-1, 1, 1, 1);

        void Time(string name, Func<Tensor> body)
        {
            var times = new List<double>();
            var cpu = new List<double>();
            using var self = Process.GetCurrentProcess();
            for (int i = 0; i < warmup + reps; i++)
            {
                using var scope = NewDisposeScope();
                self.Refresh();
                var cpu0 = self.TotalProcessorTime;
                var sw = Stopwatch.StartNew();
                var y = body();
                _ = y.sum().to(float64).item<double>();
                if (i < warmup) continue;
                times.Add(sw.Elapsed.TotalMilliseconds);
                self.Refresh();
                cpu.Add((self.TotalProcessorTime - cpu0).TotalMilliseconds);
            }
            Console.WriteLine($"PROFILE {name,-28} median_ms={BenchNetwork.Median(times),9:F3} cpu_ms={BenchNetwork.Median(cpu),9:F3}");
        }

        // Preconditioning coefficients, as SongUNetPrecond.Forward computes them (EctPrecond's c_skip and c_out).
        var skipOut = typeof(EctPrecond).GetMethod("SkipOutCoefficients", BindingFlags.Instance | BindingFlags.NonPublic)!;
        Time("precond.c_skip_c_out", () =>
        {
            var (cSkip, cOut) = ((Tensor, Tensor))skipOut.Invoke(net, [s])!;
            return cSkip.add(cOut, Ect.Compute.ScalarConstants.One);
        });

        // Mapping: the noise embedding and the two mapping layers.
        var field = (string n) => typeof(SongUNet).GetField(n, BindingFlags.Instance | BindingFlags.NonPublic)!.GetValue(unet)!;
        var mapNoise = (nn.Module<Tensor, Tensor>)field("map_noise");
        var mapLayer0 = (Linear)field("map_layer0");
        var mapLayer1 = (Linear)field("map_layer1");
        using var noiseLabels = s.log().flatten();
        Time("map_noise", () => mapNoise.forward(noiseLabels));
        using var embIn = mapNoise.forward(noiseLabels);
        Time("map_layer0+1", () => mapLayer1.forward(nn.functional.silu(mapLayer0.forward(embIn))));

        // Capture every intermediate's shape (and dtype) from one instrumented forward.
        var shapes = new Dictionary<string, (long[] Shape, ScalarType Dtype)>();
        using (var probe = unet.Forward(x32, noiseLabels, null, null, (n, t) => shapes[n] = (t.shape, t.dtype)))
        {
            if (dtypes)
            {
                foreach (var (n, (shape, dt)) in shapes) Console.WriteLine($"DTYPE {n,-28} {dt} [{string.Join(",", shape)}]");
                Console.WriteLine($"DTYPE {"unet.out",-28} {probe.dtype}");
                var (cSkip, cOut) = ((Tensor, Tensor))skipOut.Invoke(net, [s])!;
                Console.WriteLine($"DTYPE {"c_skip",-28} {cSkip.dtype}; c_out {cOut.dtype}");
                using var d = net.forward(x64, sigma64, null);
                Console.WriteLine($"DTYPE {"precond.out",-28} {d.dtype}");
                cSkip.Dispose(); cOut.Dispose();
            }
        }
        using var emb = mapLayer1.forward(nn.functional.silu(mapLayer0.forward(embIn)));
        using var embAct = nn.functional.silu(emb);

        // Every encoder and decoder module on its own, with random inputs of its forward shapes.
        var encField = (List<(string Name, nn.Module Block)>)field("_enc");
        var decField = (List<(string Name, nn.Module Block)>)field("_dec");
        foreach (var (prefix, list) in new[] { ("enc", encField), ("dec", decField) })
        {
            foreach (var (name, block) in list)
            {
                int res = int.Parse(name[..name.IndexOf('x')], CultureInfo.InvariantCulture);
                int inRes = name.EndsWith("_down", StringComparison.Ordinal) ? res * 2 : name.EndsWith("_up", StringComparison.Ordinal) ? res / 2 : res;
                switch (block)
                {
                    case UNetBlock b:
                    {
                        using var xin = randn(new long[] { batch, b.InChannels, inRes, inRes }, generator: g);
                        Time($"{prefix}.{name}", () => b.forward(xin, embAct));
                        break;
                    }
                    case Conv2d c when !name.Contains("aux_up") && !name.Contains("aux_down"):
                    {
                        using var xin = randn(new long[] { batch, c.InChannels, inRes, inRes }, generator: g);
                        Time($"{prefix}.{name}", () => c.forward(xin));
                        break;
                    }
                }
            }
        }

        Time("unet.forward", () => unet.forward(x32, noiseLabels, null, null));
        Time("precond.forward(float64)", () => net.forward(x64, sigma64, null));
        Time("sampler.1-step", () => ConsistencySampler.Sample(net, z, [tMax], generator: g));
        Time("sampler.2-step", () => ConsistencySampler.Sample(net, z, [tMax, 0.821], generator: g));
        Console.WriteLine($"RSS {BenchNetwork.RssMiB():F0} MiB");
        return 0;
    }
}
