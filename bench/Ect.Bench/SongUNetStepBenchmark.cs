using System.Diagnostics;
using Ect.Compute.Networks;
using Ect.Compute.Preconditioning;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Bench;

/// <summary>
/// Stopwatch timing of EctPrecond forward (+ backward) steps.
/// Usage: songunet-step [small|cifar] [batch=8] [threads=2] [steps=5] [forward|train] [pad|nopad]
/// "small" is the golden ddpmpp-small net (1 channel, 32 ch, mult [1,2,2], 2 blocks, 1.75M params);
/// "cifar" the CIFAR-10 DDPM++ (3 channels, 55.7M params, dropout 0.13). "nopad" disables the
/// small-output-convolution workaround (Conv2d.PadSmallConvolutions) to measure its cost.
/// </summary>
public sealed class SongUNetStepBenchmark : IBenchmarkVerb
{
    public string Name => "songunet-step";
    public string Description => "EctPrecond forward/backward s/step: [small|cifar] [batch] [threads] [steps] [forward|train] [pad|nopad]";

    public int Run(string[] args)
    {
        string which = args.Length > 0 ? args[0] : "small";
        int batch = args.Length > 1 ? int.Parse(args[1]) : 8;
        int threads = args.Length > 2 ? int.Parse(args[2]) : 2;
        int steps = args.Length > 3 ? int.Parse(args[3]) : 5;
        bool train = args.Length <= 4 || args[4] != "forward";
        bool pad = args.Length <= 5 || args[5] != "nopad";

        torch.set_num_threads(threads);
        torch.manual_seed(0);
        var cfg = which switch
        {
            "cifar" => SongUNetConfig.Cifar10DdpmPP(),
            "small" => SongUNetConfig.DdpmPP(32, 1, modelChannels: 32, channelMult: [1, 2, 2], numBlocks: 2, dropout: 0),
            _ => throw new ArgumentException($"unknown network '{which}' (small|cifar)"),
        };
        using var net = new EctPrecond(cfg);
        foreach (var m in net.modules().OfType<Conv2d>()) m.PadSmallConvolutions = pad;
        long nParams = net.parameters().Sum(p => p.numel());
        if (train) net.train(); else net.eval();
        using var x = randn(batch, cfg.InChannels, cfg.ImgResolution, cfg.ImgResolution);
        using var sigma = (randn(batch) * 1.2 - 1.2).exp();

        var times = new List<double>();
        for (int i = 0; i <= steps; i++) // step 0 is warm-up
        {
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                if (train)
                {
                    net.zero_grad();
                    var d = net.forward(x, sigma, null);
                    (d - x).square().mean().backward();
                }
                else
                {
                    using var _ = no_grad();
                    net.forward(x, sigma, null);
                }
            }
            if (i > 0) times.Add(sw.Elapsed.TotalSeconds);
        }
        times.Sort();
        double median = times[times.Count / 2];
        Console.WriteLine($"songunet-step net={which} params={nParams} batch={batch} threads={threads} mode={(train ? "train(fwd+bwd)" : "forward")} pad={pad}");
        Console.WriteLine($"  median {median:F3} s/step, min {times[0]:F3}, max {times[^1]:F3} over {steps} steps; {batch / median:F1} img/s");
        return 0;
    }
}
