namespace Ect.Compute.Networks;

/// <summary>SongUNet timestep embedding: <c>positional</c> (DDPM++) or <c>fourier</c> (NCSN++).</summary>
public enum EmbeddingType { Positional, Fourier }

/// <summary>SongUNet encoder: <c>standard</c> (DDPM++), <c>skip</c>, or <c>residual</c> (NCSN++).</summary>
public enum EncoderType { Standard, Skip, Residual }

/// <summary>SongUNet decoder: <c>standard</c> (DDPM++ and NCSN++) or <c>skip</c>.</summary>
public enum DecoderType { Standard, Skip }

/// <summary>
/// Every constructor argument of EDM's <c>SongUNet</c> (defaults as EDM's), plus the Fourier scale
/// (EDM 16, locuslab/ect 0.02). Presets follow EDM's train.py (<c>--arch=ddpmpp|ncsnpp</c>).
/// </summary>
public sealed record SongUNetConfig
{
    public int ImgResolution { get; init; } = 32;
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public int LabelDim { get; init; }
    public int AugmentDim { get; init; }
    public int ModelChannels { get; init; } = 128;
    public IReadOnlyList<int> ChannelMult { get; init; } = [1, 2, 2, 2];
    public int ChannelMultEmb { get; init; } = 4;
    public int NumBlocks { get; init; } = 4;
    public IReadOnlyList<int> AttnResolutions { get; init; } = [16];
    public double Dropout { get; init; } = 0.10;
    public double LabelDropout { get; init; }
    public EmbeddingType EmbeddingType { get; init; } = EmbeddingType.Positional;
    public int ChannelMultNoise { get; init; } = 1;
    public EncoderType EncoderType { get; init; } = EncoderType.Standard;
    public DecoderType DecoderType { get; init; } = DecoderType.Standard;
    public IReadOnlyList<int> ResampleFilter { get; init; } = [1, 1];
    /// <summary>
    /// Scale of the Fourier noise embedding's random frequencies. Deviation from EDM (16): the official ECT code's
    /// FourierEmbedding defaults to scale=0.02 (training/networks.py) and its SongUNet builds it with that default, so
    /// an NCSN++ trained from scratch there starts from 0.02; we follow ECT. (An imported EDM checkpoint carries its
    /// frequencies as the buffer map_noise.freqs, so loading one is unaffected.)
    /// </summary>
    public double FourierScale { get; init; } = FourierEmbedding.EctDefaultScale;

    /// <summary>EDM's DDPM++: positional embedding, standard encoder/decoder, [1,1] filter, channel_mult_noise 1.</summary>
    public static SongUNetConfig DdpmPP(int imgResolution = 32, int imgChannels = 3, int labelDim = 0,
        int modelChannels = 128, IReadOnlyList<int>? channelMult = null, int numBlocks = 4,
        IReadOnlyList<int>? attnResolutions = null, double dropout = 0.10) => new()
    {
        ImgResolution = imgResolution, InChannels = imgChannels, OutChannels = imgChannels, LabelDim = labelDim,
        ModelChannels = modelChannels, ChannelMult = channelMult ?? [2, 2, 2], NumBlocks = numBlocks,
        AttnResolutions = attnResolutions ?? [16], Dropout = dropout,
        EmbeddingType = EmbeddingType.Positional, ChannelMultNoise = 1,
        EncoderType = EncoderType.Standard, DecoderType = DecoderType.Standard, ResampleFilter = [1, 1],
    };

    /// <summary>EDM's NCSN++: Fourier embedding, residual encoder, standard decoder, [1,3,3,1] filter, channel_mult_noise 2.</summary>
    public static SongUNetConfig NcsnPP(int imgResolution = 32, int imgChannels = 3, int labelDim = 0,
        int modelChannels = 128, IReadOnlyList<int>? channelMult = null, int numBlocks = 4,
        IReadOnlyList<int>? attnResolutions = null, double dropout = 0.10, double fourierScale = FourierEmbedding.EctDefaultScale) => new()
    {
        ImgResolution = imgResolution, InChannels = imgChannels, OutChannels = imgChannels, LabelDim = labelDim,
        ModelChannels = modelChannels, ChannelMult = channelMult ?? [2, 2, 2], NumBlocks = numBlocks,
        AttnResolutions = attnResolutions ?? [16], Dropout = dropout,
        EmbeddingType = EmbeddingType.Fourier, ChannelMultNoise = 2, FourierScale = fourierScale,
        EncoderType = EncoderType.Residual, DecoderType = DecoderType.Standard, ResampleFilter = [1, 3, 3, 1],
    };

    /// <summary>The CIFAR-10 32x32 DDPM++ of EDM/ECT: 128 channels, mult [2,2,2], 4 blocks, attention at 16, dropout 0.13 (55.7M parameters).</summary>
    public static SongUNetConfig Cifar10DdpmPP(int imgChannels = 3, int labelDim = 0, double dropout = 0.13) =>
        DdpmPP(32, imgChannels, labelDim, 128, [2, 2, 2], 4, [16], dropout);

    /// <summary>Throws with a clear message for settings EDM's SongUNet rejects.</summary>
    public void Validate()
    {
        if (ImgResolution < 1 || InChannels < 1 || OutChannels < 1 || ModelChannels < 1 || NumBlocks < 0)
            throw new ArgumentException($"SongUNetConfig: resolution, channels and model_channels must be positive (got {this}).");
        if (ChannelMult.Count == 0) throw new ArgumentException("SongUNetConfig.ChannelMult must not be empty.");
        if ((ImgResolution >> (ChannelMult.Count - 1)) < 1 || ImgResolution % (1 << (ChannelMult.Count - 1)) != 0)
            throw new ArgumentException($"SongUNetConfig: resolution {ImgResolution} cannot be halved {ChannelMult.Count - 1} times (ChannelMult has {ChannelMult.Count} levels).");
        if (ResampleFilter.Count == 0) throw new ArgumentException("SongUNetConfig.ResampleFilter must not be empty.");
        if (Dropout < 0 || Dropout >= 1) throw new ArgumentException($"SongUNetConfig.Dropout must be in [0,1), got {Dropout}.");
        if (LabelDropout < 0 || LabelDropout > 1) throw new ArgumentException($"SongUNetConfig.LabelDropout must be in [0,1], got {LabelDropout}.");
    }

    public override string ToString() =>
        $"SongUNetConfig {{ res={ImgResolution}, in={InChannels}, out={OutChannels}, label_dim={LabelDim}, augment_dim={AugmentDim}, " +
        $"model_channels={ModelChannels}, channel_mult=[{string.Join(",", ChannelMult)}], channel_mult_emb={ChannelMultEmb}, " +
        $"num_blocks={NumBlocks}, attn=[{string.Join(",", AttnResolutions)}], dropout={Dropout}, label_dropout={LabelDropout}, " +
        $"embedding={EmbeddingType}, channel_mult_noise={ChannelMultNoise}, encoder={EncoderType}, decoder={DecoderType}, " +
        $"resample_filter=[{string.Join(",", ResampleFilter)}], fourier_scale={FourierScale} }}";
}
