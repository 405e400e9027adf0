using System.Diagnostics;
using Ect.Data;
using TorchSharp;

namespace Ect.Bench;

/// <summary>
/// Batch assembly from an in-memory uint8 set: 32x32x3, batch 128, x-flip on, 10-class one-hot labels,
/// torch.set_num_threads(1), assembly on the calling thread. Target: >= 20,000 images/s.
/// Args: [seconds=5] [count=50000].
/// </summary>
public sealed class DataBatchBenchmark : IBenchmarkVerb
{
    public string Name => "data-batch";
    public string Description => "Ect.Data batch assembly, 32x32x3 batches of 128 on one core (images/s)";

    public int Run(string[] args)
    {
        double seconds = args.Length > 0 ? double.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 5;
        int count = args.Length > 1 ? int.Parse(args[1]) : 50_000;
        torch.set_num_threads(1);
        const int b = 128, c = 3, r = 32;
        var labels = new int[count];
        for (int i = 0; i < count; i++) labels[i] = i % 10;
        using var ds = ImageDataset.Allocate("synthetic", count, c, r, r, labels, 10);
        var rng = new SplitMix64(1);
        for (int i = 0; i < count; i++)
        {
            var img = ds.GetImageForWrite(i);
            for (int j = 0; j < img.Length; j += 8)
            {
                ulong v = rng.Next();
                for (int k = 0; k < 8 && j + k < img.Length; k++) img[j + k] = (byte)(v >> (8 * k));
            }
        }
        var asm = new BatchAssembler(ds, b, seed: 7, new BatchOptions { XFlip = true });

        // Tensor path (what training uses): new [128,3,32,32] float tensor + one-hot per batch.
        for (int i = 0; i < 20; i++) asm.Next().Dispose();
        var (tensorRate, tensorBatches, tensorCpuRate) = Measure(seconds, () => { using var batch = asm.Next(); });

        // Caller-owned buffers (no allocation at all).
        var images = new float[asm.ImageFloats];
        var oneHot = new float[b * asm.LabelDim];
        var (bufferRate, bufferBatches, bufferCpuRate) = Measure(seconds, () => asm.NextInto(images, oneHot));

        // Pad 28 -> 32 (Fashion-MNIST path), 1 channel.
        using var mn = ImageDataset.Allocate("synthetic-28", 10_000, 1, 28, 28, null, 0);
        var pad = new BatchAssembler(mn, b, 7, new BatchOptions { Resolution = 32, XFlip = true });
        var (padRate, _, padCpuRate) = Measure(seconds / 2, () => { using var batch = pad.Next(); });

        Console.WriteLine($"data-batch: {count} images 3x32x32 in memory, batch {b}, x-flip, one-hot 10, torch threads {torch.get_num_threads()}, 1 assembly thread");
        Console.WriteLine("  (wall = images per wall-clock second; cpu = images per second of this process's CPU time, i.e. per busy core,");
        Console.WriteLine("   which is what one free core would deliver when other programs share the machine)");
        Console.WriteLine($"  tensor batches (Next):        wall {tensorRate,10:N0} images/s, cpu {tensorCpuRate,10:N0} images/s  ({tensorBatches} batches)");
        Console.WriteLine($"  caller buffers (NextInto):    wall {bufferRate,10:N0} images/s, cpu {bufferCpuRate,10:N0} images/s  ({bufferBatches} batches)");
        Console.WriteLine($"  1x28x28 padded to 32 (Next):  wall {padRate,10:N0} images/s, cpu {padCpuRate,10:N0} images/s");
        Console.WriteLine($"  load average at the end: {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine($"  target >= 20,000 images/s: {(tensorRate >= 20_000 ? "met" : "NOT met")}");
        return tensorRate >= 20_000 ? 0 : 1;

        (double Rate, int Batches, double CpuRate) Measure(double secs, Action step)
        {
            var proc = Process.GetCurrentProcess();
            var cpu0 = proc.TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            int n = 0;
            while (sw.Elapsed.TotalSeconds < secs) { step(); n++; }
            double wall = sw.Elapsed.TotalSeconds;
            proc.Refresh();
            double cpu = (proc.TotalProcessorTime - cpu0).TotalSeconds;
            return (n * (double)b / wall, n, n * (double)b / Math.Max(cpu, 1e-9));
        }
    }
}
