namespace Ect.Compute.Networks.Edm2;

/// <summary>
/// Arguments of EDM2's <c>UNet</c> (locuslab/ect imgnet branch, training/networks_edm2.py) and of its Blocks, with the
/// official defaults. cblock = model_channels * channel_mult; cnoise = model_channels * channel_mult_noise or cblock[0];
/// cemb = model_channels * channel_mult_emb or max(cblock).
/// </summary>
public sealed record Edm2UNetConfig
{
    public required int ImgResolution { get; init; }
    public required int ImgChannels { get; init; }
    /// <summary>Number of classes (0 = unconditional).</summary>
    public int LabelDim { get; init; }
    public int ModelChannels { get; init; } = 192;
    public IReadOnlyList<int> ChannelMult { get; init; } = [1, 2, 3, 4];
    public int? ChannelMultNoise { get; init; }
    public int? ChannelMultEmb { get; init; }
    public int NumBlocks { get; init; } = 3;
    public IReadOnlyList<int> AttnResolutions { get; init; } = [16, 8];
    public double LabelBalance { get; init; } = 0.5;
    public double ConcatBalance { get; init; } = 0.5;
    /// <summary>
    /// ECT's addition (<c>dropout_res</c>): levels whose resolution is above this run without dropout in all their blocks;
    /// 0 (the official None) = dropout everywhere.
    /// </summary>
    public int DropoutRes { get; init; }

    // Block arguments.
    public int ChannelsPerHead { get; init; } = 64;
    public double Dropout { get; init; }
    public double ResBalance { get; init; } = 0.3;
    public double AttnBalance { get; init; } = 0.3;
    /// <summary>Activation clip of every block (null = none).</summary>
    public double? ClipAct { get; init; } = 256;
    public IReadOnlyList<int> ResampleFilter { get; init; } = [1, 1];

    public int NoiseChannels => ModelChannels * (ChannelMultNoise ?? ChannelMult[0]);
    public int EmbChannels => ChannelMultEmb is { } m ? ModelChannels * m : ChannelMult.Max() * ModelChannels;

    /// <summary>Dropout of a block at resolution <paramref name="res"/> after the dropout_res override.</summary>
    public double DropoutAt(int res) => DropoutRes > 0 && res > DropoutRes ? 0 : Dropout;

    public void Validate()
    {
        void Require(bool ok, string what) { if (!ok) throw new ArgumentException($"EDM2 U-Net config: {what}."); }
        Require(ImgResolution > 0 && ImgChannels > 0, $"img_resolution ({ImgResolution}) and img_channels ({ImgChannels}) must be positive");
        Require(LabelDim >= 0, $"label_dim must be >= 0, got {LabelDim}");
        Require(ModelChannels > 0, $"model_channels must be positive, got {ModelChannels}");
        Require(ChannelMult.Count > 0 && ChannelMult.All(m => m > 0), $"channel_mult must be non-empty and positive, got [{string.Join(",", ChannelMult)}]");
        Require(ImgResolution % (1 << (ChannelMult.Count - 1)) == 0,
            $"img_resolution {ImgResolution} must be divisible by 2^(levels-1) = {1 << (ChannelMult.Count - 1)} (channel_mult has {ChannelMult.Count} levels)");
        Require(NumBlocks >= 0, $"num_blocks must be >= 0, got {NumBlocks}");
        Require(Dropout >= 0 && Dropout < 1, $"dropout must be in [0, 1), got {Dropout}");
        Require(DropoutRes >= 0, $"dropout_res must be >= 0 (0 = dropout at every level), got {DropoutRes}");
        Require(ChannelsPerHead > 0, $"channels_per_head must be positive, got {ChannelsPerHead}");
        Require(ClipAct is null || ClipAct > 0, $"clip_act must be positive or null, got {ClipAct}");
    }
}
