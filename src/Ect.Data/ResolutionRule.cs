namespace Ect.Data;

/// <summary>
/// Which image resolutions the EDM/ECT U-Nets (SongUNet) can take. The encoder halves the resolution once per level
/// after the first, and EDM's dataset_tool only writes power-of-two sizes, so a training resolution must be a power
/// of two, at least 4 and divisible by 2^(levels-1).
/// </summary>
public static class ResolutionRule
{
    public const int Min = 4;
    public const int Max = 4096;

    public static bool IsValid(int resolution, int levels = 1) =>
        resolution >= Min && resolution <= Max && (resolution & (resolution - 1)) == 0 && resolution % (1 << Math.Max(0, levels - 1)) == 0;

    /// <summary>
    /// Throws a <see cref="DatasetException"/> naming <paramref name="where"/> when the network cannot take the resolution.
    /// <paramref name="fix"/> turns the resolution to use into the fix for the caller's own interface (default: the
    /// `ect data prepare --resolution N` option; `ect train` names its configuration key instead).
    /// </summary>
    public static void Check(int resolution, string where, int levels = 1, Func<int, string>? fix = null)
    {
        if (IsValid(resolution, levels)) return;
        int up = Min;
        while (up < resolution && up < Max) up *= 2;
        int need = Math.Max(up, 1 << Math.Max(0, levels - 1));
        throw new DatasetException(where,
            $"resolution {resolution} is one the network cannot take: the U-Net halves the image at each of its {levels} level(s), so the resolution must be a power of two between {Min} and {Max}" +
            (levels > 1 ? $" and divisible by {1 << (levels - 1)}" : ""),
            fix?.Invoke(need) ?? $"Pass --resolution {need} (images are padded or resized to it)");
    }
}
