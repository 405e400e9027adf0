using System.Globalization;
using Ect.Compute.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ect.Compute.Training;

/// <summary>
/// Everything needed to continue a TrainStep exactly, in one safetensors file: network and EMA state dicts
/// (<c>net/NAME</c>, <c>ema/NAME</c>, and each of the step's further averaged copies as <c>PREFIX/NAME</c>), the optimizer state (<c>optimizer/exp_avg/i</c>, <c>optimizer/exp_avg_sq/i</c>,
/// <c>optimizer/step</c>), the step's RNG state (<c>rng</c>), and in <c>__metadata__</c> the
/// counters, stage and learning rate (<c>ect.*</c> keys) plus the caller's opaque strings (<c>user.*</c> keys,
/// e.g. the data sampler state). Written atomically: a temporary file in the same folder, flushed to disk, renamed.
/// </summary>
public static class TrainState
{
    public const string FormatName = "ect-train-state/1";
    private const string UserPrefix = "user.";
    /// <summary>The fp16 loss scaler's state (<see cref="Optim.DynamicLossScaler.Serialize"/>), present when the step has one.</summary>
    public const string LossScalerKey = "ect.loss-scaler";

    public static void Save(string path, IResumableTrainStep step, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"cannot save the training state to '{full}': folder '{dir}' does not exist.");

        AtomicFile.Write(full, fs => WriteTo(fs, step, metadata));
    }

    /// <summary>The state as the bytes of the file <see cref="Save"/> writes (a data-parallel job's rank 0 broadcasts it to the others).</summary>
    public static byte[] ToBytes(IResumableTrainStep step, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var ms = new MemoryStream();
        WriteTo(ms, step, metadata);
        return ms.ToArray();
    }

    private static void WriteTo(Stream stream, IResumableTrainStep step, IReadOnlyDictionary<string, string>? metadata)
    {
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, v) in step.Net.state_dict()) tensors["net/" + k] = v;
        foreach (var (k, v) in step.EmaNet.state_dict()) tensors["ema/" + k] = v;
        foreach (var (prefix, module) in step.ExtraModules)
            foreach (var (k, v) in module.state_dict()) tensors[prefix + "/" + k] = v;
        tensors["rng"] = step.GetRngState();
        foreach (var (k, v) in step.Optimizer.StateTensors()) tensors["optimizer/" + k] = v;

        var meta = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["ect.format"] = FormatName,
            ["ect.step"] = step.StepIndex.ToString(CultureInfo.InvariantCulture),
            ["ect.images"] = step.ImagesSeen.ToString(CultureInfo.InvariantCulture),
            ["ect.stage"] = step.Stage.ToString(CultureInfo.InvariantCulture),
            ["ect.lr"] = step.LearningRate.ToString("R", CultureInfo.InvariantCulture),
        };
        if (step.LossScaler is { } scaler) meta[LossScalerKey] = scaler.Serialize();
        if (metadata is not null)
            foreach (var (k, v) in metadata) meta[UserPrefix + k] = v;

        Safetensors.Write(stream, tensors, meta);
    }

    /// <summary>Restores <paramref name="step"/> from <paramref name="path"/>; returns the caller's metadata (without the user. prefix).</summary>
    public static IReadOnlyDictionary<string, string> Load(string path, IResumableTrainStep step) => Restore(path, Safetensors.Read(path), step);

    /// <summary>Restores <paramref name="step"/> from the bytes of a state file (<see cref="ToBytes"/>); <paramref name="source"/> names them in errors.</summary>
    public static IReadOnlyDictionary<string, string> Load(byte[] data, string source, IResumableTrainStep step) => Restore(source, Safetensors.Read(data, source), step);

    private static IReadOnlyDictionary<string, string> Restore(string path, Safetensors.Contents contents, IResumableTrainStep step)
    {
        try
        {
            if (!contents.Metadata.TryGetValue("ect.format", out var fmt) || fmt != FormatName)
                throw new InvalidDataException($"'{path}' is not an ECT training state (ect.format = '{fmt ?? "<missing>"}', expected '{FormatName}').");
            using var noGrad = no_grad();
            LoadModule(path, "net/", step.Net, contents.Tensors);
            LoadModule(path, "ema/", step.EmaNet, contents.Tensors);
            foreach (var (prefix, module) in step.ExtraModules) LoadModule(path, prefix + "/", module, contents.Tensors);
            step.SetRngState(Required(path, contents.Tensors, "rng"));
            step.Optimizer.LoadState(k => contents.Tensors.TryGetValue("optimizer/" + k, out var t) ? t : null, path);

            step.RestoreCounters(long.Parse(RequiredMeta(path, contents.Metadata, "ect.step"), CultureInfo.InvariantCulture),
                long.Parse(RequiredMeta(path, contents.Metadata, "ect.images"), CultureInfo.InvariantCulture));
            step.SetStage(int.Parse(RequiredMeta(path, contents.Metadata, "ect.stage"), CultureInfo.InvariantCulture));
            step.SetLearningRate(double.Parse(RequiredMeta(path, contents.Metadata, "ect.lr"), CultureInfo.InvariantCulture));
            // A state saved without a scaler (a float32 or bf16 run switched to fp16) keeps the scaler's initial state,
            // as the official amp loop does when 'gradscaler_state' is missing.
            if (step.LossScaler is { } scaler && contents.Metadata.TryGetValue(LossScalerKey, out var scalerState))
                scaler.Restore(scalerState, path);
            return contents.Metadata.Where(kv => kv.Key.StartsWith(UserPrefix, StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key[UserPrefix.Length..], kv => kv.Value, StringComparer.Ordinal);
        }
        finally
        {
            foreach (var t in contents.Tensors.Values) t.Dispose();
        }
    }

    private static void LoadModule(string path, string prefix, nn.Module module, IReadOnlyDictionary<string, Tensor> tensors)
    {
        foreach (var (k, dst) in module.state_dict())
        {
            var src = Required(path, tensors, prefix + k);
            if (!src.shape.SequenceEqual(dst.shape))
                throw new InvalidDataException($"'{path}': '{prefix}{k}' has shape [{string.Join(",", src.shape)}], the module expects [{string.Join(",", dst.shape)}] (different network config?).");
            dst.copy_(src);
        }
    }

    private static Tensor Required(string path, IReadOnlyDictionary<string, Tensor> tensors, string name)
        => tensors.TryGetValue(name, out var t) ? t
            : throw new InvalidDataException($"'{path}' has no tensor '{name}' (not a training state for this network, or written by an older version).");

    private static string RequiredMeta(string path, IReadOnlyDictionary<string, string> meta, string key)
        => meta.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"'{path}' has no metadata '{key}'.");
}
