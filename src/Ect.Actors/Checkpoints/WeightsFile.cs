using Ect.Actors.Run;
using Ect.Actors.Evaluation;
using Ect.Actors.Engine;
using Ect.Actors.Configuration;
using System.Globalization;
using System.Security.Cryptography;
using Ect.Compute.IO;
using Ect.Compute.Networks;
using Ect.Compute.Training;
using static TorchSharp.torch;

namespace Ect.Actors.Checkpoints;

/// <summary>
/// A network's weights on their own, to ship and to start a run from (ECT tunes from a pretrained diffusion model).
/// Format <c>ect-weights/1</c>: one safetensors file whose tensors are the EMA network's state dict under EDM's own keys
/// (<c>model.enc.32x32_conv.weight</c>, ...; exactly what <c>EDMPrecond.state_dict()</c> holds, so PyTorch loads it
/// with <c>load_state_dict</c>), and whose metadata describes the network as a training checkpoint does
/// (<c>user.network-config</c>, <c>user.precond</c>, <c>user.sigma-*</c>, <c>user.phase</c>, <c>user.step</c>, ...).
/// Written by `ect export`; read by <see cref="CheckpointModel"/> (`ect eval`) and by <see cref="ReadInitial"/>
/// (`ect.network.init`), which also accepts a training checkpoint (its EMA) and a plain EDM state dict exported
/// from a .pkl (docs/safetensors-export.md).
/// </summary>
public static class WeightsFile
{
    public const string FormatName = "ect-weights/1";
    private const string User = CheckpointFormat.UserPrefix;

    /// <summary>What `ect export` wrote.</summary>
    public sealed record ExportResult(string Path, int Tensors, long Parameters, long Bytes, string Sha256);

    /// <summary>
    /// Writes the EMA weights of training checkpoint <paramref name="checkpoint"/> to <paramref name="output"/> (temporary
    /// file, fsync, rename). Metadata: the checkpoint's <c>user.*</c> keys (run step, kimg, network, data path) and the checkpoint's SHA-256 as <c>user.source-sha256</c>.
    /// </summary>
    public static ExportResult Export(string checkpoint, string output)
    {
        if (!File.Exists(checkpoint)) throw new FileNotFoundException($"checkpoint '{checkpoint}' does not exist.", checkpoint);
        var contents = Safetensors.Read(checkpoint);
        try
        {
            var meta = contents.Metadata;
            if (!meta.TryGetValue(CheckpointFormat.FormatKey, out var fmt) || fmt != TrainState.FormatName)
                throw new InvalidDataException($"'{checkpoint}' is not an ECT training checkpoint (ect.format = '{fmt ?? "<missing>"}', expected '{TrainState.FormatName}').");
            // An EDM2 checkpoint (ect.network.type = edm2) describes its network as user.edm2-config instead; its EMA
            // exports the same way (unet.* keys: EDM2's Precond loads them, and so does an EDM2 run's ect.network.init).
            bool edm2 = meta.TryGetValue(User + CheckpointFormat.NetworkKind, out var kind) && kind == CheckpointFormat.NetworkKindEdm2;
            if (!edm2 && !meta.ContainsKey(User + CheckpointFormat.NetworkConfig))
                throw new InvalidDataException($"'{checkpoint}' has no network description (metadata 'user.network-config'): written by an older ect; continue the run for one checkpoint, then export that one.");
            const string ema = CheckpointFormat.StateEmaPrefix;
            var tensors = contents.Tensors.Where(kv => kv.Key.StartsWith(ema, StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key[ema.Length..], kv => kv.Value, StringComparer.Ordinal);
            if (tensors.Count == 0) throw new InvalidDataException($"'{checkpoint}' holds no EMA tensors ('ema/...').");

            var outMeta = meta.Where(kv => kv.Key.StartsWith(User, StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
            outMeta.Remove(User + "format"); // checkpoints before CheckpointFormat carried a second tag; ect.format is the one
            outMeta[CheckpointFormat.FormatKey] = FormatName;
            // The daemon's run step (user.step) counts pretraining and tuning; ect.step is the current TrainStep's own count.
            if (!outMeta.ContainsKey(User + CheckpointFormat.Step) && meta.TryGetValue("ect.step", out var s)) outMeta[User + CheckpointFormat.Step] = s;
            outMeta[User + CheckpointFormat.SourceSha256] = Sha256(checkpoint);

            var full = System.IO.Path.GetFullPath(output);
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
            AtomicFile.Write(full, fs => Safetensors.Write(fs, tensors, outMeta));
            return new ExportResult(full, tensors.Count, tensors.Values.Sum(t => t.numel()), new FileInfo(full).Length, Sha256(full));
        }
        finally
        {
            foreach (var t in contents.Tensors.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Loads the weights of <paramref name="path"/> into <paramref name="targets"/> (each a network with the configured
    /// architecture), strictly: every key, every shape, nothing extra. Accepts <c>ect-weights/1</c>, a training
    /// checkpoint (its EMA tensors) and a plain EDM state dict. When the file describes its network, a different
    /// architecture is refused naming both (dropout may differ: it changes no tensor). Returns the file's SHA-256.
    /// </summary>
    /// <exception cref="InvalidDataException">The file does not fit the network; the message names the first mismatch.</exception>
    public static string ReadInitial(string path, SongUNetConfig expected, params nn.Module[] targets)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"initial weights '{path}' do not exist.", path);
        var contents = Safetensors.Read(path);
        try
        {
            CheckDescribedNetwork(path, contents.Metadata, expected);
            var prefix = CheckpointFormat.EmaPrefix(contents.Metadata);
            contents.Metadata.TryGetValue(CheckpointFormat.FormatKey, out var fmt);
            if (fmt is not null && fmt != TrainState.FormatName && fmt != FormatName)
                throw new InvalidDataException($"'{path}': ect.format '{fmt}' is neither '{FormatName}' nor '{TrainState.FormatName}'.");
            var tensors = contents.Tensors.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value, StringComparer.Ordinal);
            foreach (var target in targets)
            {
                try { StateDict.Load(target, tensors); }
                catch (ArgumentException e) { throw new InvalidDataException($"initial weights '{path}': {e.Message}", e); }
            }
        }
        finally
        {
            foreach (var t in contents.Tensors.Values) t.Dispose();
        }
        return Sha256(path);
    }

    /// <summary>
    /// Refuses, from the header alone (no tensors read), a file whose recorded network differs from
    /// <paramref name="expected"/>; a file without a description passes (the strict load checks its shapes).
    /// </summary>
    public static void CheckDescribedNetwork(string path, IReadOnlyDictionary<string, string> metadata, SongUNetConfig expected)
    {
        if (!metadata.TryGetValue(User + CheckpointFormat.NetworkConfig, out var json)) return;
        SongUNetConfig found;
        try { found = CheckpointModel.DeserializeConfig(json); }
        catch (Exception e) when (e is System.Text.Json.JsonException or NotSupportedException)
        {
            throw new InvalidDataException($"'{path}': metadata 'user.network-config' is not a SongUNet config ({e.Message}).", e);
        }
        // Dropout only changes training-time behaviour, never a tensor: tuning with another rate is the user's choice.
        // FourierScale only draws a fresh network's frequencies; loaded weights carry them (map_noise.freqs), so a
        // file written when the default was EDM's 16 (the shipped teacher) loads into today's 0.02 configuration.
        string Key(SongUNetConfig c) => CheckpointModel.SerializeConfig(c with { Dropout = 0, LabelDropout = 0, FourierScale = 0 });
        if (Key(found) != Key(expected))
            throw new InvalidDataException(
                $"initial weights '{path}' are for another network: the file has {Describe(found)}, the configuration asks for {Describe(expected)}. " +
                "Set ect.network.* (and ect.data.resolution) to the file's architecture (ect.network.augment-dim for augment-dim), or set ect.network.init = \"\" to start from random weights.");
    }

    private static string Describe(SongUNetConfig c) => string.Create(CultureInfo.InvariantCulture,
        $"{c.ImgResolution}x{c.ImgResolution}x{c.InChannels}, model-channels {c.ModelChannels}, channel-mult [{string.Join(", ", c.ChannelMult)}], " +
        $"num-blocks {c.NumBlocks}, attn-resolutions [{string.Join(", ", c.AttnResolutions)}], labels {c.LabelDim}, encoder {c.EncoderType}, decoder {c.DecoderType}, embedding {c.EmbeddingType}, augment-dim {c.AugmentDim}");

    public static string Sha256(string path)
    {
        using var fs = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(fs));
    }
}
