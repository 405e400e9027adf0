using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace Ect.Compute.Networks.Edm2;

/// <summary>
/// EDM2's magnitude-preserving U-Net (Karras et al. 2024; locuslab/ect imgnet branch training/networks_edm2.UNet,
/// which adds dropout_res). Module and parameter names are EDM2's, so state-dict keys equal PyTorch's
/// (<c>out_gain</c>, <c>emb_fourier.freqs</c>, <c>emb_noise.weight</c>, <c>enc.16x16_conv.weight</c>,
/// <c>dec.8x8_in0.attn_qkv.weight</c>, ...). Inputs: x [N,C,H,W], noiseLabels [N] (or [1], broadcast),
/// classLabels [N or 1, label_dim] (required when label_dim &gt; 0).
/// </summary>
public sealed class Edm2UNet : nn.Module<Tensor, Tensor, Tensor?, Tensor>
{
    public Edm2UNetConfig Config { get; }

    public Parameter OutGain { get; }
    public MPFourier EmbFourier => emb_fourier;
    public MPConv EmbNoise => emb_noise;
    public MPConv? EmbLabel => emb_label;
    public MPConv OutConv => out_conv;

    // Field names are EDM2's module names, declared in its construction order (RegisterComponents registers
    // Module-typed fields by field name: emb_noise.weight, enc.16x16_conv.weight, out_conv.weight, ...).
    private readonly MPFourier emb_fourier;
    private readonly MPConv emb_noise;
    private readonly MPConv? emb_label;
    private readonly TorchSharp.Modules.ModuleDict<nn.Module> enc = new();
    private readonly TorchSharp.Modules.ModuleDict<nn.Module> dec = new();
    private readonly MPConv out_conv;
    private readonly List<(string Name, nn.Module Module)> _enc = [];
    private readonly List<(string Name, Edm2Block Block)> _dec = [];

    public Edm2UNet(Edm2UNetConfig config) : base(nameof(Edm2UNet))
    {
        config.Validate();
        Config = config;
        var c = config;
        var cblock = c.ChannelMult.Select(m => c.ModelChannels * m).ToArray();
        int cemb = c.EmbChannels;

        Edm2Block Block(string path, int cin, int cout, BlockFlavor flavor, int res, ResampleMode mode = ResampleMode.Keep, bool attention = false) =>
            new(path, cin, cout, cemb, flavor, mode, c.ResampleFilter, attention, c.ChannelsPerHead, c.DropoutAt(res),
                c.ResBalance, c.AttnBalance, c.ClipAct);

        // Registration order = the official construction order (parameters enumerate and the init RNG draws as in PyTorch).
        OutGain = new Parameter(zeros([], device: ModuleDevice.Current));
        register_parameter("out_gain", OutGain);
        emb_fourier = new MPFourier(c.NoiseChannels);
        emb_noise = new MPConv(c.NoiseChannels, cemb, []);
        if (c.LabelDim != 0)
        {
            emb_label = new MPConv(c.LabelDim, cemb, []);
        }

        // Encoder.
        int cout = c.ImgChannels + 1;
        var skipChannels = new List<int>();
        for (int level = 0; level < cblock.Length; level++)
        {
            int res = c.ImgResolution >> level;
            string r = $"{res}x{res}";
            if (level == 0)
            {
                int cin = cout;
                cout = cblock[level];
                _enc.Add(($"{r}_conv", new MPConv(cin, cout, [3, 3])));
            }
            else
            {
                _enc.Add(($"{r}_down", Block($"enc.{r}_down", cout, cout, BlockFlavor.Enc, res, ResampleMode.Down)));
            }
            skipChannels.Add(cout);
            for (int idx = 0; idx < c.NumBlocks; idx++)
            {
                int cin = cout;
                cout = cblock[level];
                _enc.Add(($"{r}_block{idx}", Block($"enc.{r}_block{idx}", cin, cout, BlockFlavor.Enc, res, attention: c.AttnResolutions.Contains(res))));
                skipChannels.Add(cout);
            }
        }

        // Decoder.
        for (int level = cblock.Length - 1; level >= 0; level--)
        {
            int res = c.ImgResolution >> level;
            string r = $"{res}x{res}";
            if (level == cblock.Length - 1)
            {
                _dec.Add(($"{r}_in0", Block($"dec.{r}_in0", cout, cout, BlockFlavor.Dec, res, attention: true)));
                _dec.Add(($"{r}_in1", Block($"dec.{r}_in1", cout, cout, BlockFlavor.Dec, res)));
            }
            else
            {
                _dec.Add(($"{r}_up", Block($"dec.{r}_up", cout, cout, BlockFlavor.Dec, res, ResampleMode.Up)));
            }
            for (int idx = 0; idx <= c.NumBlocks; idx++)
            {
                int cin = cout + skipChannels[^1];
                skipChannels.RemoveAt(skipChannels.Count - 1);
                cout = cblock[level];
                _dec.Add(($"{r}_block{idx}", Block($"dec.{r}_block{idx}", cin, cout, BlockFlavor.Dec, res, attention: c.AttnResolutions.Contains(res))));
            }
        }
        foreach (var (name, m) in _enc) enc.Add(name, m);
        foreach (var (name, m) in _dec) dec.Add(name, m);
        out_conv = new MPConv(cout, c.ImgChannels, [3, 3]);
        RegisterComponents();
    }

    /// <summary>Every block, encoder then decoder, in forward order.</summary>
    public IEnumerable<Edm2Block> Blocks => _enc.Select(e => e.Module).OfType<Edm2Block>().Concat(_dec.Select(d => d.Block));

    /// <summary>Every MPConv layer (for switching forced weight normalisation).</summary>
    public IEnumerable<MPConv> MPConvs => modules().OfType<MPConv>();

    public override Tensor forward(Tensor x, Tensor noiseLabels, Tensor? classLabels) => Forward(x, noiseLabels, classLabels, null, null);

    /// <summary>
    /// The forward pass, reporting named outputs to <paramref name="sink"/> (<c>emb_fourier</c>, <c>emb_noise</c>,
    /// <c>emb_label</c>, <c>enc.16x16_conv</c>, every block <c>enc.8x8_down</c> ... and its layers
    /// <c>enc.8x8_block0.conv_res0</c> ..., <c>out_conv</c>) and taking the dropout noise from
    /// <paramref name="dropoutNoise"/> when given.
    /// </summary>
    public Tensor Forward(Tensor x, Tensor noiseLabels, Tensor? classLabels, ActivationSink? sink, DropoutNoise? dropoutNoise)
    {
        using var scope = NewDisposeScope();

        // Embedding.
        var emb = emb_noise.forward(Tap("emb_fourier", emb_fourier.forward(noiseLabels)));
        Tap("emb_noise", emb);
        if (emb_label is not null)
        {
            if (classLabels is null)
                throw new ArgumentException($"Edm2UNet has label_dim {Config.LabelDim}: pass class labels of shape [N,{Config.LabelDim}].");
            var label = Tap("emb_label", emb_label.forward(classLabels.Times(Math.Sqrt(classLabels.shape[1]))));
            emb = Mp.Sum(emb, label, Config.LabelBalance);
        }
        emb = Mp.Silu(emb);

        // Encoder.
        x = cat([x, ones_like(x.narrow(1, 0, 1))], 1);
        var skips = new List<Tensor>();
        foreach (var (name, m) in _enc)
        {
            x = m is Edm2Block b ? b.Forward(x, emb, sink, dropoutNoise) : ((MPConv)m).forward(x);
            Tap("enc." + name, x);
            skips.Add(x);
        }

        // Decoder.
        foreach (var (name, block) in _dec)
        {
            if (name.Contains("block"))
            {
                x = Mp.Cat(x, skips[^1], t: Config.ConcatBalance);
                skips.RemoveAt(skips.Count - 1);
            }
            x = block.Forward(x, emb, sink, dropoutNoise);
            Tap("dec." + name, x);
        }
        x = Tap("out_conv", out_conv.Forward(x, OutGain));
        return x.MoveToOuterDisposeScope();

        Tensor Tap(string name, Tensor t)
        {
            sink?.Invoke(name, t);
            return t;
        }
    }
}
