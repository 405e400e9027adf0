using System.Diagnostics;
using Ect.Data;
using Ect.Data.Sources;

namespace Ect.Bench;

/// <summary>
/// `ect data prepare` speed: Fashion-MNIST's 60,000 training images (gzipped IDX) to an EDM zip at 32x32.
/// Target: under 30 s. Also times loading the zip back (PNG decode). Args: [source=/usr/share/datasets/fashion-mnist] [dest] [keep|delete] [resolution].
/// </summary>
public sealed class DataPrepareBenchmark : IBenchmarkVerb
{
    public string Name => "data-prepare";
    public string Description => "Ect.Data DatasetPreparer: Fashion-MNIST 60k -> EDM zip (seconds)";

    public int Run(string[] args)
    {
        var source = args.Length > 0 ? args[0] : "/usr/share/datasets/fashion-mnist";
        var dest = args.Length > 1 ? args[1] : Path.Combine(Path.GetTempPath(), "ect-bench-fashion-mnist.zip");
        if (!Directory.Exists(source) && !File.Exists(source))
        {
            Console.Error.WriteLine($"{source} does not exist: apt-get install dataset-fashion-mnist, or pass a source path");
            return 2;
        }
        int lastPct = -1;
        var progress = new Progress<(int done, int total)>(p =>
        {
            int pct = p.total == 0 ? 100 : p.done * 100 / p.total;
            if (pct / 10 != lastPct / 10) { lastPct = pct; Console.Write($"\r  {p.done}/{p.total}"); }
        });
        var proc = Process.GetCurrentProcess();
        var cpu0 = proc.TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        int? resolution = args.Length > 3 ? int.Parse(args[3]) : null;
        var result = DatasetPreparer.Prepare(source, dest, resolution, null, progress);
        var prepare = sw.Elapsed.TotalSeconds;
        proc.Refresh();
        var prepareCpu = (proc.TotalProcessorTime - cpu0).TotalSeconds;
        Console.WriteLine();
        sw.Restart();
        using var ds = DatasetSource.Load(dest);
        var load = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"data-prepare: {source} ({result.SourceFormat}) -> {dest}");
        Console.WriteLine($"  {result.Images} images {result.Channels}x{result.Resolution}x{result.Resolution}, {result.ClassCount} classes, zip {new FileInfo(dest).Length / 1e6:F1} MB");
        Console.WriteLine($"  prepare: {prepare:F2} s ({result.Images / prepare:N0} images/s); target < 30 s: {(prepare < 30 ? "met" : "NOT met")}");
        Console.WriteLine($"  prepare CPU time: {prepareCpu:F2} s (2 encode threads); load average at the end: {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine($"  load zip back into memory (PNG decode, 2 threads): {load:F2} s ({ds.Count / load:N0} images/s)");
        if (!(args.Length > 2 && args[2] == "keep")) File.Delete(dest);
        return prepare < 30 ? 0 : 1;
    }
}
