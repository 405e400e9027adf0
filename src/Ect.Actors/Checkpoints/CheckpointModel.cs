using Ect.Actors.Run;
using Ect.Actors.Evaluation;
using Ect.Actors.Engine;
using Ect.Actors.Configuration;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Ect.Compute.IO;
using Ect.Compute.Networks;
using Ect.Compute.Networks.Edm2;
using Ect.Compute.Preconditioning;
using Ect.Compute.Training;
using static TorchSharp.torch;

namespace Ect.Actors.Checkpoints;

/// <summary>Which preconditioning wraps the SongUNet: ECT's consistency model or EDM's denoiser.</summary>
public enum PrecondKind { Ect, Edm }

/// <summary>
/// The EMA network of a daemon checkpoint (TrainState's safetensors file) or of an `ect export` weights file, rebuilt
/// for sampling: a DDPM++/NCSN++ SongUNet, or an EDM2 U-Net (metadata <c>user.network-kind = edm2</c>, its config
/// <c>user.edm2-config</c>, written by Edm2TrainingEngine; one <see cref="Edm2Precond"/> serves both kinds). A SongUNet
/// is described by the metadata <see cref="DescribeNetwork"/> writes in TorchTrainingEngine.Capture:
/// <c>user.network-config</c> (SongUNetConfig as JSON), <c>user.precond</c> (ect|edm: what the phase trained),
/// <c>user.sigma-min</c>, <c>user.sigma-data</c>, <c>user.phase</c>, <c>user.data-path</c>. The weights are the
/// <c>ema/NAME</c> tensors (TrainState's layout). Checkpoints from before these keys existed are refused with a
/// message naming the file.
/// </summary>
public sealed class CheckpointModel : IDisposable
{
    // Every key is CheckpointFormat's (the one owner of the checkpoint's keys).
    /// <summary>The largest image a described network may make here: above every EDM/EDM2 network (EDM2's latents are 64x64,
    /// EDM's pixel networks 32-64), far below what would make `ect eval`'s first batch allocate terabytes.</summary>
    public const int MaxResolution = 4096;

    private const string NetworkConfigKey = CheckpointFormat.NetworkConfig;
    private const string PrecondKey = CheckpointFormat.Precond;
    private const string SigmaMinKey = CheckpointFormat.SigmaMin;
    private const string SigmaDataKey = CheckpointFormat.SigmaData;
    private const string PhaseKey = CheckpointFormat.Phase;
    private const string DataPathKey = CheckpointFormat.DataPath;
    private const string User = CheckpointFormat.UserPrefix;
    private const string EmaPrefix = CheckpointFormat.StateEmaPrefix;

    private static readonly JsonSerializerOptions Json = new()
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
        PropertyNamingPolicy = JsonNamingPolicy.KebabCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public string Path { get; }
    /// <summary>The SongUNet's config; null for an EDM2 network (<see cref="Edm2Config"/>).</summary>
    public SongUNetConfig? Config { get; }
    /// <summary>The EDM2 U-Net's config; null for a SongUNet.</summary>
    public Edm2UNetConfig? Edm2Config { get; }
    /// <summary>The preconditioning the network was built with (may differ from <see cref="TrainedAs"/> when asked for).</summary>
    public PrecondKind Kind { get; }
    /// <summary>What the checkpoint's phase trained: edm (pretraining, EDM loss) or ect (tuning).</summary>
    public PrecondKind TrainedAs { get; }
    /// <summary>The EMA network (eval mode, no gradients); its channels, resolution and classes are the images'.</summary>
    public Precond Net { get; }
    public long Step { get; }
    public double Kimg { get; }
    public string Phase { get; }
    /// <summary>The dataset the run trained on, or null when the checkpoint does not say.</summary>
    public string? DataPath { get; }

    private CheckpointModel(string path, SongUNetConfig? config, Edm2UNetConfig? edm2Config, PrecondKind kind, PrecondKind trainedAs, Precond net,
        long step, double kimg, string phase, string? dataPath)
    {
        (Path, Config, Edm2Config, Kind, TrainedAs, Net, Step, Kimg, Phase, DataPath) = (path, config, edm2Config, kind, trainedAs, net, step, kimg, phase, dataPath);
    }

    /// <summary>"EDM2" or "DDPM++"/"NCSN++", for messages.</summary>
    public string NetworkName => Edm2Config is not null ? "EDM2" : Config!.EncoderType == EncoderType.Residual ? "NCSN++" : "DDPM++";

    public static string SerializeConfig(SongUNetConfig config) => JsonSerializer.Serialize(config, Json);

    public static SongUNetConfig DeserializeConfig(string json) =>
        JsonSerializer.Deserialize<SongUNetConfig>(json, Json) ?? throw new JsonException("network-config is null");

    /// <summary>
    /// The caller's checkpoint metadata plus the keys that describe the network (existing keys are kept as they are).
    /// During pretraining the weights are an EDM denoiser (EctPrecond's training mode equals EDMPrecond), so precond = edm;
    /// during tuning they are an ECT consistency model.
    /// </summary>
    public static IReadOnlyDictionary<string, string> DescribeNetwork(
        IReadOnlyDictionary<string, string> metadata, SongUNetConfig config, string phase, double sigmaMin, double sigmaData, string? dataPath)
    {
        var m = new Dictionary<string, string>(metadata, StringComparer.Ordinal);
        m.TryAdd(NetworkConfigKey, SerializeConfig(config));
        m.TryAdd(PrecondKey, phase == "pretrain" ? "edm" : "ect");
        m.TryAdd(SigmaMinKey, sigmaMin.ToString("R", CultureInfo.InvariantCulture));
        m.TryAdd(SigmaDataKey, sigmaData.ToString("R", CultureInfo.InvariantCulture));
        m.TryAdd(PhaseKey, phase);
        if (dataPath is not null) m.TryAdd(DataPathKey, dataPath);
        return m;
    }

    /// <summary>
    /// Rebuilds the EMA network of <paramref name="path"/> in eval mode without gradients. <paramref name="as"/>: the
    /// preconditioning to wrap it in (null: the one the checkpoint names). Both share SongUNet's state-dict keys, so an
    /// ECT model can be loaded as EDM and vice versa (e.g. a pretraining checkpoint as the EDM teacher for Heun sampling).
    /// An EDM2 network has one preconditioning for both (EDM2's Precond: no sigma_min boundary), so <paramref name="as"/>
    /// only names how it is sampled.
    /// </summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Not a training state, metadata missing or wrong, or tensors that do not fit.</exception>
    public static CheckpointModel Load(string path, PrecondKind? @as = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint '{path}' does not exist.", path);
        Ect.Compute.Runtime.LibTorchBackends.Configure(); // no NNPACK: its "Unsupported hardware" line per convolution
        var contents = Safetensors.Read(path);
        Precond? net = null;
        try
        {
            var meta = contents.Metadata;
            if (!meta.TryGetValue(CheckpointFormat.FormatKey, out var fmt) || (fmt != TrainState.FormatName && fmt != WeightsFile.FormatName))
                throw new InvalidDataException($"'{path}' is not an ECT training checkpoint nor an `ect export` weights file (ect.format = '{fmt ?? "<missing>"}', expected '{TrainState.FormatName}' or '{WeightsFile.FormatName}').");
            // A training state keeps the EMA under "ema/"; an exported weights file holds only the EMA, under EDM's own keys.
            var emaPrefix = fmt == WeightsFile.FormatName ? "" : EmaPrefix;
            var trainedAs = ParseKind(path, Required(path, meta, PrecondKey));
            var kind = @as ?? trainedAs;
            double sigmaData = Number(path, meta, SigmaDataKey);
            var phase = Required(path, meta, PhaseKey);
            var stepKey = meta.ContainsKey(User + CheckpointFormat.Step) ? User + CheckpointFormat.Step : "ect." + CheckpointFormat.Step;
            var stepText = meta.TryGetValue(stepKey, out var st) ? st : Required(path, meta, CheckpointFormat.Step, "ect.");
            long step = long.TryParse(stepText, NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsedStep) ? parsedStep
                : throw new InvalidDataException($"'{path}': metadata '{stepKey}' = '{stepText}' is not a step number.");
            double kimg = meta.TryGetValue(User + CheckpointFormat.Kimg, out var ki)
                && double.TryParse(ki, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsedKimg) ? parsedKimg : double.NaN;
            meta.TryGetValue(User + DataPathKey, out var dataPath);

            SongUNetConfig? config = null;
            Edm2UNetConfig? edm2Config = null;
            Func<Precond> build;
            if (meta.TryGetValue(User + CheckpointFormat.NetworkKind, out var kindName) && kindName == CheckpointFormat.NetworkKindEdm2)
            {
                var edm2Json = Required(path, meta, CheckpointFormat.Edm2Config);
                try { edm2Config = Engine.Edm2TrainingEngine.DeserializeConfig(edm2Json); edm2Config.Validate(); }
                catch (Exception e) when (e is JsonException or ArgumentException or NotSupportedException)
                {
                    throw new InvalidDataException($"'{path}': metadata '{User}{CheckpointFormat.Edm2Config}' is not a valid EDM2 config ({e.Message}).", e);
                }
                var edm2 = edm2Config;
                build = () => new Edm2Precond(edm2, sigmaData);
            }
            else if (!meta.TryGetValue(User + NetworkConfigKey, out var cfgJson))
                throw new InvalidDataException(
                    $"'{path}' has no network description (metadata '{User}{NetworkConfigKey}'): it was written by an older version of ect " +
                    "that did not record the network. Continue the run for one checkpoint with this version (`ect train` resumes it), then evaluate the new checkpoint.");
            else
            {
                try { config = DeserializeConfig(cfgJson); config.Validate(); }
                catch (Exception e) when (e is JsonException or ArgumentException or NotSupportedException)
                {
                    throw new InvalidDataException($"'{path}': metadata '{User}{NetworkConfigKey}' is not a valid SongUNet config ({e.Message}).", e);
                }
                double sigmaMin = Number(path, meta, SigmaMinKey);
                var song = config;
                build = kind == PrecondKind.Ect ? () => new EctPrecond(song, sigmaMin, sigmaData) : () => new EdmPrecond(song, sigmaData);
            }
            var described = (object?)config ?? edm2Config;
            var resolution = config?.ImgResolution ?? edm2Config!.ImgResolution;
            // The file describes its own network, so the description is hostile input like the tensors: it is checked
            // against them on the meta device (no memory) before anything is allocated. A description the tensors do not
            // fit -- including one of a network far larger than the file -- is refused here, not after building it.
            if (resolution > MaxResolution)
                throw new InvalidDataException($"'{path}': its metadata describes a {resolution}x{resolution} network; this build evaluates up to {MaxResolution}x{MaxResolution} (a corrupt or hostile description?).");
            var shapes = MetaShapes.Of(build);
            if (MetaShapes.Mismatch(shapes, contents.Tensors, emaPrefix) is { } mismatch)
                throw new InvalidDataException($"'{path}': its tensors do not fit the network its metadata describes ({described}): {mismatch} (checked before building the network).");
            net = build();
            using (no_grad())
                foreach (var (k, dst) in net.state_dict()) dst.copy_(contents.Tensors[emaPrefix + k]);
            net.eval();
            foreach (var p in net.parameters()) p.requires_grad = false;
            var model = new CheckpointModel(path, config, edm2Config, kind, trainedAs, net, step, kimg, phase, dataPath);
            net = null;
            return model;
        }
        finally
        {
            net?.Dispose();
            foreach (var t in contents.Tensors.Values) t.Dispose();
        }
    }

    private static PrecondKind ParseKind(string path, string v) => v switch
    {
        "ect" => PrecondKind.Ect,
        "edm" => PrecondKind.Edm,
        _ => throw new InvalidDataException($"'{path}': metadata '{User}{PrecondKey}' = '{v}'; expected 'ect' or 'edm'."),
    };

    private static string Required(string path, IReadOnlyDictionary<string, string> meta, string key, string prefix = User) =>
        meta.TryGetValue(prefix + key, out var v) ? v
            : throw new InvalidDataException($"'{path}' has no metadata '{prefix}{key}' (written by an older version of ect?).");

    private static double Number(string path, IReadOnlyDictionary<string, string> meta, string key)
    {
        var v = Required(path, meta, key);
        return double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d
            : throw new InvalidDataException($"'{path}': metadata '{User}{key}' = '{v}' is not a number.");
    }

    public void Dispose() => Net.Dispose();
}
