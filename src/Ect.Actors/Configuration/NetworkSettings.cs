using Ect.Compute.Networks;
using Ect.Compute.Networks.Edm2;

namespace Ect.Actors.Configuration;

/// <summary>
/// ect.network.*, validated once by <see cref="RunSettings.From"/>. The engines build their network from this record
/// and the data set's shape (<see cref="SongUNet"/>, <see cref="Edm2UNet"/>); nothing re-reads the keys.
/// </summary>
/// <param name="Type">ddpmpp, ncsnpp or edm2.</param>
/// <param name="DropoutRes">edm2 only: levels above this resolution run without dropout (0 = dropout everywhere).</param>
/// <param name="AugmentDim">EDM's augment_dim (ddpmpp/ncsnpp; 0 for edm2).</param>
/// <param name="Init">ect.network.init as given ("" = random weights); <see cref="Engine.Engines.ResolveInit"/> finds the file.</param>
public sealed record NetworkSettings(
    string Type, int ModelChannels, IReadOnlyList<int> ChannelMult, int NumBlocks, IReadOnlyList<int> AttnResolutions,
    double Dropout, int DropoutRes, int AugmentDim, string Init)
{
    public const string DdpmPP = "ddpmpp";
    public const string NcsnPP = "ncsnpp";
    public const string Edm2 = "edm2";

    public bool IsEdm2 => Type == Edm2;

    /// <summary>The SongUNet (DDPM++ or NCSN++) for a data set of this shape.</summary>
    public SongUNetConfig SongUNet(int resolution, int channels, int labelDim)
    {
        if (IsEdm2) throw new InvalidOperationException("ect.network.type = edm2 has no SongUNet; use Edm2UNet");
        var net = Type == NcsnPP
            ? SongUNetConfig.NcsnPP(resolution, channels, labelDim, ModelChannels, ChannelMult.ToList(), NumBlocks, AttnResolutions.ToList(), Dropout)
            : SongUNetConfig.DdpmPP(resolution, channels, labelDim, ModelChannels, ChannelMult.ToList(), NumBlocks, AttnResolutions.ToList(), Dropout);
        // EDM's augment_dim (9 in its train.py when augmentation is on): only the mapping layer map_augment. We train
        // without augmentation labels, which equals EDM's zero labels (map_augment has no bias), as does sampling.
        return net with { AugmentDim = AugmentDim };
    }

    /// <summary>The EDM2 U-Net for a data set of this shape (EDM2's defaults for everything the keys do not set).</summary>
    public Edm2UNetConfig Edm2UNet(int resolution, int channels, int labelDim) => new()
    {
        ImgResolution = resolution,
        ImgChannels = channels,
        LabelDim = labelDim,
        ModelChannels = ModelChannels,
        ChannelMult = ChannelMult.ToList(),
        NumBlocks = NumBlocks,
        AttnResolutions = AttnResolutions.ToList(),
        Dropout = Dropout,
        DropoutRes = DropoutRes,
    };

    internal static NetworkSettings Read(SettingsReader r)
    {
        var type = r.String("ect.network.type", v => v is DdpmPP or NcsnPP or Edm2, "unknown network: use \"ddpmpp\", \"ncsnpp\" or \"edm2\"");
        var edm2 = type == Edm2;
        var modelChannels = r.Int("ect.network.model-channels", v => v > 0, "must be > 0");
        var mult = r.IntList("ect.network.channel-mult", v => v.Count > 0 && v.All(m => m > 0), "a non-empty list of positive integers");
        var blocks = r.Int("ect.network.num-blocks", v => v > 0, "must be > 0");
        var attn = r.IntList("ect.network.attn-resolutions", v => v.All(a => a > 0), "a list of resolutions in pixels, e.g. [16, 8] ([] = no attention)");
        var dropout = r.Double("ect.network.dropout", v => v is >= 0 and < 1, "must be in [0, 1)");
        var augment = r.Int("ect.network.augment-dim", v => v >= 0, "must be >= 0 (0 = no map_augment layer; EDM's augmented checkpoints: 9)");
        // dropout-res is read by edm2 only (an unreadable value under ddpmpp is not its concern).
        var dropoutRes = (edm2 ? r : r.Quiet()).Int("ect.network.dropout-res", v => v >= 0, "must be >= 0 (0 = dropout at every level)");
        if (edm2 && augment != 0)
            r.Refuse($"ect.network.augment-dim = {augment}: EDM2 networks have no augmentation input; set it to 0");
        var init = r.String("ect.network.init", _ => true, "a file name, or \"\" for random weights");
        return new NetworkSettings(type, modelChannels, mult, blocks, attn, dropout, dropoutRes, augment, init);
    }
}

/// <summary>
/// What ect.network.init is checked against before any work (Engines.CheckInit): the engine, the network, the data's
/// resolution and whether labels are used. Read on its own for a continued run's recorded configuration, whose other
/// keys may hold a value that a later check refuses with its own fix (a poisoned live change: --revert-command).
/// </summary>
public sealed record InitCheckSettings(string Engine, NetworkSettings Network, int Resolution, bool UseLabels)
{
    public static InitCheckSettings Of(RunSettings s) => new(s.Engine, s.Network, s.Resolution, s.UseLabels);

    /// <summary>These keys of <paramref name="c"/> only, validated as RunSettings.From does (a ConfigurationException names each wrong one).</summary>
    public static InitCheckSettings From(Akka.Configuration.Config c)
    {
        var errors = new List<string>();
        var r = new SettingsReader(c, errors);
        var settings = new InitCheckSettings(
            r.String("ect.run.engine", v => v is "torch" or "fake", "must be \"torch\" or \"fake\""),
            NetworkSettings.Read(r),
            r.Int("ect.data.resolution", v => v > 0, "must be > 0 (images are padded or resized to it)"),
            r.Bool("ect.data.use-labels"));
        if (errors.Count > 0) throw new ConfigurationException("Configuration refused:\n  " + string.Join("\n  ", errors));
        return settings;
    }
}
