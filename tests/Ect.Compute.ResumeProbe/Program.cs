using System.Globalization;
using Ect.Compute.Losses;
using Ect.Compute.Networks;
using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using Ect.Compute.Training;
using TorchSharp;
using static TorchSharp.torch;

// Usage:
//   probe train  STEPS STATE_OUT      fresh run of STEPS steps, then save the state
//   probe resume STATE_IN STEPS       load the state, run STEPS more steps
//   probe heap policy|none            what glibc does with an 8 MiB block, with or without NativeHeapPolicy (HeapProbe)
// Both print "step=N net=SHA ema=SHA" at the end. Images for global step i come from Generator(1000 + i).
namespace Ect.Compute.ResumeProbe;

public static class Program
{
    public static int Main(string[] args)
    {
        if (args is ["heap", var heapMode]) return HeapProbe.Run(heapMode); // before anything else touches the heap policy
        Ect.Compute.Runtime.OpenMpWaitPolicy.Apply(); // as ect's Main, before libtorch loads
        Ect.Compute.Runtime.NativeHeapPolicy.Apply(); // as ect's Main
        try
        {
            torch.set_num_threads(1);
            // As every torch entry point of ect does (no NNPACK; oneDNN on unless ECT_LIBTORCH_ONEDNN=off: see
            // LibTorchBackends.Configure). Before the networks padded channel counts (Networks.ChannelPaddedConvolution),
            // this test's two process chains ended with different bits in about half the tries on AMD EPYC hosts.
            Ect.Compute.Runtime.LibTorchBackends.Configure();
            var cfg = new TrainStepConfig(4, new OptimizerConfig(OptimizerKind.RAdam, 1e-3), new EmaConfig(HalfLifeKimg: 0.05, RampupRatio: 0.5), Seed: 5);
            using var step = NewStep(cfg);
            int steps;
            switch (args)
            {
                case ["train", var n, var output]:
                    steps = int.Parse(n, CultureInfo.InvariantCulture);
                    Run(step, steps);
                    TrainState.Save(output, step, new Dictionary<string, string> { ["sampler"] = $"pos={step.ImagesSeen}" });
                    break;
                case ["resume", var input, var n]:
                    var meta = TrainState.Load(input, step);
                    if (meta.GetValueOrDefault("sampler") != $"pos={step.ImagesSeen}") throw new InvalidDataException("metadata did not round-trip");
                    steps = int.Parse(n, CultureInfo.InvariantCulture);
                    Run(step, steps);
                    break;
                default:
                    Console.Error.WriteLine("usage: probe train STEPS STATE_OUT | probe resume STATE_IN STEPS");
                    return 2;
            }
            Console.WriteLine($"step={step.StepIndex} net={StateDigest.Compute(step.Net)} ema={StateDigest.Compute(step.EmaNet)}");
            return 0;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine(e);
            return 1;
        }
    }

    private static TrainStep NewStep(TrainStepConfig cfg)
    {
        // A tiny DDPM++ (8x8, 1 channel) with dropout, so the shared-mask and RNG-state paths are exercised.
        var net = SongUNetConfig.DdpmPP(imgResolution: 8, imgChannels: 1, modelChannels: 8, channelMult: [1, 2],
            numBlocks: 1, attnResolutions: [4], dropout: 0.1);
        torch.random.manual_seed(123);
        var a = new EctPrecond(net);
        var b = new EctPrecond(net);
        return new TrainStep(a, b, new EctLoss(new MappingFunction(stage: 1)), cfg);
    }

    private static void Run(TrainStep step, int steps)
    {
        for (int i = 0; i < steps; i++)
        {
            using var g = new Generator((ulong)(1000 + step.StepIndex));
            using var x = rand(new long[] { step.Config.BatchSize, 1, 8, 8 }, generator: g) * 2 - 1;
            step.Step(x);
        }
    }
}
