using Ect.Actors.Run;
using Ect.Actors.Evaluation;
using Ect.Actors.Engine;
using Ect.Actors.Configuration;
using System.Globalization;
using System.Text.RegularExpressions;
using Ect.Compute.Networks;
using Ect.Compute.Preconditioning;
using Ect.Compute.Training;
using static TorchSharp.torch;

namespace Ect.Actors.Checkpoints;

/// <summary>
/// Checks initial weights (ect.network.init) against the configured network from the safetensors header alone
/// (names and shapes, no tensor read), before any work: a plain EDM state dict carries no network description, so
/// its tensors are the description. A mismatch names the configuration key to change and the value the file needs
/// (e.g. EDM's checkpoints trained with augmentation carry <c>model.map_augment.weight</c> [C, 9]:
/// <c>ect.network.augment-dim = 9</c>), never "resume" (the run has not begun).
/// </summary>
public static partial class InitWeightsCheck
{
    /// <summary>The state-dict key of EDM's augmentation-label mapping layer (Linear(augment_dim, noise_channels, bias=False)).</summary>
    public const string MapAugmentKey = "model.map_augment.weight";

    /// <summary>
    /// Throws <see cref="InvalidDataException"/> naming the key(s) to change when the tensors of <paramref name="file"/>
    /// do not fit a network built from <paramref name="expected"/>; returns quietly when they do.
    /// </summary>
    public static void Check(SafetensorsFile file, SongUNetConfig expected)
    {
        var prefix = CheckpointFormat.EmaPrefix(file.Metadata);
        var found = file.Tensors.Values.Where(e => e.Name.StartsWith(prefix, StringComparison.Ordinal))
            .ToDictionary(e => e.Name[prefix.Length..], e => e.Shape.ToArray(), StringComparer.Ordinal);
        var wanted = ExpectedShapes(expected);

        var missing = wanted.Keys.Where(k => !found.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var extra = found.Keys.Where(k => !wanted.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var reshaped = wanted.Keys.Where(k => found.TryGetValue(k, out var s) && !s.SequenceEqual(wanted[k]))
            .Order(StringComparer.Ordinal).ToList();
        if (missing.Count == 0 && extra.Count == 0 && reshaped.Count == 0) return;

        var fixes = Fixes(found, expected);
        var first = reshaped.Count > 0
            ? $"tensor '{prefix}{reshaped[0]}' is {Show(found[reshaped[0]])} in the file, the configured network has {Show(wanted[reshaped[0]])}"
            : extra.Count > 0
                ? $"the file has '{prefix}{extra[0]}' {Show(found[extra[0]])}, which the configured network does not"
                : $"the configured network has '{missing[0]}' {Show(wanted[missing[0]])}, which the file does not";
        var counts = $"{missing.Count} missing, {extra.Count} extra, {reshaped.Count} of another shape";
        var fix = fixes.Count > 0
            ? "Set " + string.Join(" and ", fixes) + " (--set KEY=VALUE or your --config file)"
            : "Set ect.network.* (type, model-channels, channel-mult, num-blocks, attn-resolutions, augment-dim) and ect.data.resolution to the file's network";
        throw new InvalidDataException(
            $"initial weights '{file.Path}' do not fit the configured network ({counts}; {first}). {fix}, " +
            "or set ect.network.init = \"\" to start from random weights.");
    }

    /// <summary>Image channels and class labels of a plain state dict, from its first encoder layer and map_label (3 and 0 when absent).</summary>
    public static (int Channels, int Labels) ImageChannelsAndLabels(SafetensorsFile file)
    {
        var prefix = CheckpointFormat.EmaPrefix(file.Metadata);
        int channels = 3, labels = 0;
        foreach (var e in file.Tensors.Values)
        {
            if (!e.Name.StartsWith(prefix, StringComparison.Ordinal)) continue;
            var name = e.Name[prefix.Length..];
            if (EncConv().IsMatch(name) && e.Shape.Count == 4) channels = (int)e.Shape[1];
            if (name == "model.map_label.weight" && e.Shape.Count == 2) labels = (int)e.Shape[1];
        }
        return (channels, labels);
    }

    /// <summary>The configuration values the file's tensors imply, where they differ from <paramref name="expected"/>.</summary>
    private static List<string> Fixes(IReadOnlyDictionary<string, long[]> found, SongUNetConfig expected)
    {
        var fixes = new List<string>();
        void Want(string key, long value, long configured, string why)
        {
            if (value != configured) fixes.Add($"{key} = {value.ToString(CultureInfo.InvariantCulture)} ({why}; configured: {configured.ToString(CultureInfo.InvariantCulture)})");
        }

        long augment = found.TryGetValue(MapAugmentKey, out var aug) && aug.Length == 2 ? aug[1] : 0;
        Want("ect.network.augment-dim", augment, expected.AugmentDim,
            augment > 0 ? $"the file has {MapAugmentKey} {Show(aug!)}: EDM trained it with augmentation labels"
                        : $"the file has no {MapAugmentKey}");

        var first = found.Keys.Select(k => EncConv().Match(k)).FirstOrDefault(m => m.Success);
        if (first is not null && found[first.Value] is { Length: 4 } conv)
        {
            var res = long.Parse(first.Groups[1].Value, CultureInfo.InvariantCulture);
            Want("ect.network.model-channels", conv[0], expected.ModelChannels, $"{first.Value} has {conv[0]} output channels");
            Want("ect.data.resolution", res, expected.ImgResolution, $"the first encoder layer is {first.Value}");
            if (conv[1] != expected.InChannels)
                fixes.Add($"ect.data.path to a dataset with {conv[1]} image channels ({first.Value} reads {conv[1]}; the data has {expected.InChannels})");
            var levels = found.Keys.Select(k => EncLevel().Match(k)).Where(m => m.Success).Select(m => m.Groups[1].Value).Distinct().Count();
            if (levels > 0 && levels != expected.ChannelMult.Count)
                fixes.Add($"ect.network.channel-mult to {levels} levels (the file's encoder has {levels} resolutions; configured: [{string.Join(", ", expected.ChannelMult)}])");
            var blocks = found.Keys.Select(k => EncBlock().Match(k)).Where(m => m.Success && m.Groups[1].Value == first.Groups[1].Value)
                .Select(m => m.Groups[2].Value).Distinct().Count();
            if (blocks > 0) Want("ect.network.num-blocks", blocks, expected.NumBlocks, $"the file has {blocks} blocks at {res}x{res}");
        }
        long labels = found.TryGetValue("model.map_label.weight", out var lab) && lab.Length == 2 ? lab[1] : 0;
        if (labels != expected.LabelDim)
            fixes.Add(labels > 0
                ? $"ect.data.use-labels = on with a {labels}-class dataset (the file has model.map_label.weight {Show(lab!)}; configured labels: {expected.LabelDim})"
                : $"ect.data.use-labels = off (the file has no model.map_label.weight; configured labels: {expected.LabelDim})");
        bool fourier = found.ContainsKey("model.map_noise.freqs");
        if (fourier != (expected.EmbeddingType == EmbeddingType.Fourier))
            fixes.Add($"ect.network.type = \"{(fourier ? "ncsnpp" : "ddpmpp")}\" (the file's noise embedding is {(fourier ? "Fourier" : "positional")})");
        return fixes;
    }

    /// <summary>The state-dict shapes of a network built from <paramref name="config"/> (built once on the CPU, then freed).</summary>
    public static Dictionary<string, long[]> ExpectedShapes(SongUNetConfig config)
    {
        using var scope = NewDisposeScope();
        using var net = new EctPrecond(config with { Dropout = 0 });
        return net.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);
    }

    private static string Show(IReadOnlyList<long> shape) => "[" + string.Join(", ", shape) + "]";

    [GeneratedRegex(@"^model\.enc\.(\d+)x\1_conv\.weight$")]
    private static partial Regex EncConv();

    [GeneratedRegex(@"^model\.enc\.(\d+)x\1_")]
    private static partial Regex EncLevel();

    [GeneratedRegex(@"^model\.enc\.(\d+)x\1_block(\d+)\.")]
    private static partial Regex EncBlock();
}
