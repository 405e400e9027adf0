using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ect.Compute.Networks;

/// <summary>
/// Receives named intermediate outputs during an instrumented forward pass. Names follow EDM's module
/// paths: <c>map_noise</c> (before the sin/cos swap), <c>map_label</c>, <c>map_augment</c>,
/// <c>map_layer0</c>/<c>map_layer1</c> (before SiLU), <c>enc.{res}x{res}_...</c>, <c>dec.{res}x{res}_...</c>.
/// The tensor is owned by the network; clone it to keep it.
/// </summary>
public delegate void ActivationSink(string name, Tensor output);

/// <summary>
/// EDM's re-implementation of the DDPM++ / NCSN++ U-Net (Song et al. 2021), with EDM's module names so
/// that state-dict keys equal PyTorch's (<c>map_noise</c>, <c>map_layer0</c>, <c>enc.32x32_block0.norm0.weight</c>,
/// <c>dec.32x32_aux_conv.bias</c>, ...). Inputs: x [N,Cin,H,W], noiseLabels [N] (or [1], broadcast),
/// classLabels [N,labelDim] (required when labelDim &gt; 0), augmentLabels [N,augmentDim] or null.
/// </summary>
public sealed class SongUNet : nn.Module<Tensor, Tensor, Tensor?, Tensor?, Tensor>
{
    public SongUNetConfig Config { get; }

    // Field names are EDM's module names: TorchSharp registers Module-typed fields by field name
    // (RegisterComponents), which gives the state-dict keys map_layer0.weight, enc.32x32_conv.bias, ...
    private readonly nn.Module<Tensor, Tensor> map_noise;
    private readonly Linear? map_label, map_augment;
    private readonly Linear map_layer0, map_layer1;
    private readonly TorchSharp.Modules.ModuleDict<nn.Module> enc = new();
    private readonly TorchSharp.Modules.ModuleDict<nn.Module> dec = new();
    private readonly List<(string Name, nn.Module Block)> _enc = [];
    private readonly List<(string Name, nn.Module Block)> _dec = [];

    public SongUNet(SongUNetConfig config) : base(nameof(SongUNet))
    {
        config.Validate();
        Config = config;
        var c = config;
        int embChannels = c.ModelChannels * c.ChannelMultEmb;
        int noiseChannels = c.ModelChannels * c.ChannelMultNoise;
        var init = LayerInit.Default;
        var initZero = LayerInit.Zero;
        var initAttn = LayerInit.Attention;
        UNetBlock Block(int cin, int cout, bool up = false, bool down = false, bool attention = false) =>
            new(cin, cout, embChannels, up: up, down: down, attention: attention, numHeads: 1, dropout: c.Dropout,
                skipScale: Math.Sqrt(0.5), eps: 1e-6, resampleFilter: c.ResampleFilter, resampleProj: true,
                adaptiveScale: false, init: init, initZero: initZero, initAttn: initAttn);

        // Mapping (construction order as EDM's, so the init RNG draws follow the same sequence).
        map_noise = c.EmbeddingType == EmbeddingType.Positional
            ? new PositionalEmbedding(noiseChannels, endpoint: true)
            : new FourierEmbedding(noiseChannels, c.FourierScale);
        if (c.LabelDim > 0)
        {
            map_label = new Linear(c.LabelDim, noiseChannels, init: init);
        }
        if (c.AugmentDim > 0)
        {
            map_augment = new Linear(c.AugmentDim, noiseChannels, bias: false, init: init);
        }
        map_layer0 = new Linear(noiseChannels, embChannels, init: init);
        map_layer1 = new Linear(embChannels, embChannels, init: init);

        // Encoder.
        int cout = c.InChannels, caux = c.InChannels;
        for (int level = 0; level < c.ChannelMult.Count; level++)
        {
            int res = c.ImgResolution >> level;
            string r = $"{res}x{res}";
            if (level == 0)
            {
                int cin = cout;
                cout = c.ModelChannels;
                _enc.Add(($"{r}_conv", new Conv2d(cin, cout, 3, init: init)));
            }
            else
            {
                _enc.Add(($"{r}_down", Block(cout, cout, down: true)));
                if (c.EncoderType == EncoderType.Skip)
                {
                    _enc.Add(($"{r}_aux_down", new Conv2d(caux, caux, 0, down: true, resampleFilter: c.ResampleFilter)));
                    _enc.Add(($"{r}_aux_skip", new Conv2d(caux, cout, 1, init: init)));
                }
                if (c.EncoderType == EncoderType.Residual)
                {
                    _enc.Add(($"{r}_aux_residual", new Conv2d(caux, cout, 3, down: true, resampleFilter: c.ResampleFilter, fusedResample: true, init: init)));
                    caux = cout;
                }
            }
            for (int idx = 0; idx < c.NumBlocks; idx++)
            {
                int cin = cout;
                cout = c.ModelChannels * c.ChannelMult[level];
                _enc.Add(($"{r}_block{idx}", Block(cin, cout, attention: c.AttnResolutions.Contains(res))));
            }
        }
        var skips = _enc.Where(e => !e.Name.Contains("aux")).Select(e => OutChannelsOf(e.Block)).ToList();

        // Decoder.
        for (int level = c.ChannelMult.Count - 1; level >= 0; level--)
        {
            int res = c.ImgResolution >> level;
            string r = $"{res}x{res}";
            if (level == c.ChannelMult.Count - 1)
            {
                _dec.Add(($"{r}_in0", Block(cout, cout, attention: true)));
                _dec.Add(($"{r}_in1", Block(cout, cout)));
            }
            else
            {
                _dec.Add(($"{r}_up", Block(cout, cout, up: true)));
            }
            for (int idx = 0; idx <= c.NumBlocks; idx++)
            {
                int cin = cout + skips[^1];
                skips.RemoveAt(skips.Count - 1);
                cout = c.ModelChannels * c.ChannelMult[level];
                bool attn = idx == c.NumBlocks && c.AttnResolutions.Contains(res);
                _dec.Add(($"{r}_block{idx}", Block(cin, cout, attention: attn)));
            }
            if (c.DecoderType == DecoderType.Skip || level == 0)
            {
                if (c.DecoderType == DecoderType.Skip && level < c.ChannelMult.Count - 1)
                    _dec.Add(($"{r}_aux_up", new Conv2d(c.OutChannels, c.OutChannels, 0, up: true, resampleFilter: c.ResampleFilter)));
                _dec.Add(($"{r}_aux_norm", new GroupNorm(cout, eps: 1e-6)));
                // Output conv (OutChannels = image channels): runs through Conv2d's padded kernel, see Conv2d.MinComputeChannels.
                _dec.Add(($"{r}_aux_conv", new Conv2d(cout, c.OutChannels, 3, init: initZero)));
            }
        }

        // Nested dictionaries as EDM's torch.nn.ModuleDict (module names cannot contain dots).
        foreach (var (name, block) in _enc) enc.Add(name, block);
        foreach (var (name, block) in _dec) dec.Add(name, block);
        RegisterComponents();
    }

    private static int OutChannelsOf(nn.Module m) => m switch
    {
        UNetBlock b => b.OutChannels,
        Conv2d conv => conv.OutChannels,
        _ => throw new InvalidOperationException($"Unexpected encoder module {m.GetType().Name}"),
    };

    /// <summary>Module names of the encoder, in forward order (EDM's <c>enc.keys()</c>).</summary>
    public IReadOnlyList<string> EncoderNames => _enc.Select(e => e.Name).ToList();
    /// <summary>Module names of the decoder, in forward order (EDM's <c>dec.keys()</c>).</summary>
    public IReadOnlyList<string> DecoderNames => _dec.Select(e => e.Name).ToList();

    public override Tensor forward(Tensor x, Tensor noiseLabels, Tensor? classLabels, Tensor? augmentLabels) =>
        Forward(x, noiseLabels, classLabels, augmentLabels, null);

    /// <summary>The forward pass, reporting each named intermediate output to <paramref name="sink"/> when given.</summary>
    public Tensor Forward(Tensor x, Tensor noiseLabels, Tensor? classLabels, Tensor? augmentLabels, ActivationSink? sink)
    {
        // Mapping.
        var emb = map_noise.forward(noiseLabels);
        sink?.Invoke("map_noise", emb);
        using (var halves = emb.reshape(emb.shape[0], 2, -1))
        using (var flipped = halves.flip(1))
        {
            var swapped = flipped.reshape(emb.shape); // swap [cos, sin] -> [sin, cos]
            emb.Dispose();
            emb = swapped;
        }
        if (map_label is not null)
        {
            if (classLabels is null)
                throw new ArgumentException($"SongUNet has label_dim {Config.LabelDim}: pass class labels of shape [N,{Config.LabelDim}].");
            var tmp = classLabels;
            if (training && Config.LabelDropout > 0)
            {
                using var dropout = Config.LabelDropout.ToScalar();
                using var keep = rand(x.shape[0], 1, device: x.device).ge(dropout);
                tmp = tmp * keep.to(tmp.dtype);
            }
            using (var scaled = tmp.Times(Math.Sqrt(map_label.InFeatures)))
            using (var lab = map_label.forward(scaled))
            {
                sink?.Invoke("map_label", lab);
                var sum = emb.Plus(lab);
                emb.Dispose();
                emb = sum;
            }
            if (!ReferenceEquals(tmp, classLabels)) tmp.Dispose();
        }
        if (map_augment is not null && augmentLabels is not null)
        {
            using var aug = map_augment.forward(augmentLabels);
            sink?.Invoke("map_augment", aug);
            var sum = emb.Plus(aug);
            emb.Dispose();
            emb = sum;
        }
        using (var l0 = map_layer0.forward(emb))
        {
            sink?.Invoke("map_layer0", l0);
            emb.Dispose();
            emb = F.silu(l0);
        }
        using (var l1 = map_layer1.forward(emb))
        {
            sink?.Invoke("map_layer1", l1);
            emb.Dispose();
            emb = F.silu(l1);
        }

        // Encoder. Intermediates are kept alive in `skips` / `owned` until the end of the pass.
        var owned = new List<Tensor>();
        try
        {
            var skips = new List<Tensor>();
            var aux = x;
            var h = x;
            foreach (var (name, block) in _enc)
            {
                if (name.Contains("aux_down"))
                {
                    aux = Own(((Conv2d)block).forward(aux));
                }
                else if (name.Contains("aux_skip"))
                {
                    // The tap is the module's own output, as a forward hook on enc.NxN_aux_skip sees it (the sum with
                    // the block's state happens in SongUNet.forward, outside the module).
                    using var s = ((Conv2d)block).forward(aux);
                    sink?.Invoke("enc." + name, s);
                    h = skips[^1] = Own(h.Plus(s));
                    continue;
                }
                else if (name.Contains("aux_residual"))
                {
                    using var s = ((Conv2d)block).forward(aux);
                    sink?.Invoke("enc." + name, s);
                    using var sum = h.Plus(s);
                    h = skips[^1] = aux = Own(sum.Over(Math.Sqrt(2)));
                    continue;
                }
                else
                {
                    h = Own(block is UNetBlock b ? b.forward(h, emb) : ((Conv2d)block).forward(h));
                    skips.Add(h);
                }
                sink?.Invoke("enc." + name, name.Contains("aux_down") ? aux : h);
            }

            // Decoder.
            Tensor? decAux = null, tmp = null;
            foreach (var (name, block) in _dec)
            {
                if (name.Contains("aux_up"))
                {
                    decAux = Own(((Conv2d)block).forward(decAux!));
                    sink?.Invoke("dec." + name, decAux);
                }
                else if (name.Contains("aux_norm"))
                {
                    tmp = Own(((GroupNorm)block).forward(h));
                    sink?.Invoke("dec." + name, tmp);
                }
                else if (name.Contains("aux_conv"))
                {
                    using var act = F.silu(tmp!);
                    tmp = Own(((Conv2d)block).forward(act));
                    sink?.Invoke("dec." + name, tmp);
                    decAux = decAux is null ? tmp : Own(tmp.Plus(decAux));
                }
                else
                {
                    var ub = (UNetBlock)block;
                    if (h.shape[1] != ub.InChannels)
                    {
                        var skip = skips[^1];
                        skips.RemoveAt(skips.Count - 1);
                        h = Own(cat([h, skip], 1));
                    }
                    h = Own(ub.forward(h, emb));
                    sink?.Invoke("dec." + name, h);
                }
            }
            if (decAux is null) throw new InvalidOperationException("SongUNet decoder produced no output (no aux_conv).");
            // By reference: List.Remove would call Tensor.Equals, an element-wise comparison that never
            // matches a tensor holding NaN (so the output was disposed) and may match another equal tensor.
            owned.RemoveAll(t => ReferenceEquals(t, decAux));
            return decAux;
        }
        finally
        {
            foreach (var t in owned) t.Dispose();
            emb.Dispose();
        }

        Tensor Own(Tensor t)
        {
            owned.Add(t);
            return t;
        }
    }

    /// <summary>
    /// Runs the network without gradients and returns a detached copy of every named intermediate output
    /// (see <see cref="ActivationSink"/>), plus the final output under <c>"output"</c>.
    /// </summary>
    public Dictionary<string, Tensor> ExtractActivations(Tensor x, Tensor noiseLabels, Tensor? classLabels = null, Tensor? augmentLabels = null)
    {
        var result = new Dictionary<string, Tensor>();
        using (no_grad())
        {
            var output = Forward(x, noiseLabels, classLabels, augmentLabels, (name, t) => result[name] = t.detach().clone());
            result["output"] = output;
        }
        return result;
    }
}
