using Ect.Compute.Networks;

namespace Ect.Bench;

/// <summary>
/// The network every speed bench and bench/side-by-side.sh use (issue 21's "bench config"): DDPM++ scaled down,
/// model_channels 32, channel_mult [1,2,2], 2 blocks, attention at 16, 1 channel, 32x32, dropout 0.1.
/// /work/shared/harness/official_bench.py's defaults are the same network (its dropout default is 0.2: the script
/// passes --dropout 0.1).
/// </summary>
public static class BenchNetwork
{
    public const int Resolution = 32;
    public const int Channels = 1;

    public static SongUNetConfig Config() => SongUNetConfig.DdpmPP(imgResolution: Resolution, imgChannels: Channels, modelChannels: 32,
        channelMult: [1, 2, 2], numBlocks: 2, attnResolutions: [16], dropout: 0.1);

    /// <summary>The value of NAME=VALUE arguments, or <paramref name="fallback"/>.</summary>
    public static string Arg(string[] args, string name, string fallback) =>
        args.Select(a => a.Split('=', 2)).Where(p => p.Length == 2 && p[0] == name).Select(p => p[1]).LastOrDefault() ?? fallback;

    public static double RssMiB()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024.0;
        return double.NaN;
    }

    public static double Median(IEnumerable<double> values)
    {
        var v = values.OrderBy(x => x).ToList();
        return v.Count == 0 ? double.NaN : v.Count % 2 == 1 ? v[v.Count / 2] : (v[v.Count / 2 - 1] + v[v.Count / 2]) / 2;
    }
}
