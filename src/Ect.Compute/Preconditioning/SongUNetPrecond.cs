using Ect.Compute.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Preconditioning;

/// <summary>
/// Shared body of EDM-style preconditioners around a <see cref="SongUNet"/> registered as submodule
/// <c>model</c> (state-dict keys <c>model.enc.32x32_conv.weight</c>, ...), following EDM's
/// <c>EDMPrecond.forward</c>: x cast to float32, sigma reshaped to [-1,1,1,1] (a 0-dim or [1] sigma
/// broadcasts over the batch), class labels as [-1, label_dim] float32 (zeros [1,label_dim] when not
/// given; none when label_dim is 0), D = c_skip x + c_out F(c_in x, c_noise). EDM's use_fp16 is
/// <see cref="Precision"/> (off: everything in float32).
/// </summary>
public abstract class SongUNetPrecond : Precond
{
    public SongUNet Model { get; }
    public SongUNetConfig NetworkConfig { get; }

    protected SongUNetPrecond(string name, SongUNetConfig net, double sigmaData) : base(name)
    {
        if (net.InChannels != net.OutChannels)
            throw new ArgumentException($"{name}: the network must map images to images (in_channels {net.InChannels} != out_channels {net.OutChannels}).");
        if (!(sigmaData > 0)) throw new ArgumentException($"{name}: sigma_data must be positive, got {sigmaData}.");
        NetworkConfig = net;
        SigmaData = sigmaData;
        Model = new SongUNet(net);
        register_module("model", Model);
    }

    public override double SigmaData { get; }
    public override int ImgResolution => NetworkConfig.ImgResolution;
    public override int ImgChannels => NetworkConfig.InChannels;
    public override int LabelDim => NetworkConfig.LabelDim;

    /// <summary>
    /// ect.run.mixed-precision: the U-Net runs in this dtype (EDM's use_fp16, the amp branch's --fp16): its input is cast,
    /// its layers cast their float32 weights to it, its output is cast back; preconditioning stays float32. Off by default.
    /// </summary>
    public Runtime.MixedPrecision Precision { get; set; } = Runtime.MixedPrecision.Off;

    /// <summary>(c_skip, c_out) for float32 sigma of shape [-1,1,1,1] in the current mode.</summary>
    protected abstract (Tensor CSkip, Tensor COut) SkipOutCoefficients(Tensor sigma);

    public override Tensor forward(Tensor x, Tensor sigma, Tensor? classLabels) =>
        Forward(x, sigma, classLabels, null, null);

    /// <summary>
    /// The preconditioned denoiser with optional augmentation labels and an activation sink for the raw network.
    /// </summary>
    public Tensor Forward(Tensor x, Tensor sigma, Tensor? classLabels, Tensor? augmentLabels, ActivationSink? sink)
    {
        // Intermediates are disposed explicitly rather than by a dispose scope, so that tensors a sink
        // clones during the pass stay alive for the caller.
        if (x.dim() != 4 || x.shape[1] != ImgChannels)
            throw new ArgumentException($"{GetName()}: x must be [N,{ImgChannels},H,W], got [{string.Join(",", x.shape)}].");
        if (sigma.numel() != 1 && sigma.numel() != x.shape[0])
            throw new ArgumentException($"{GetName()}: sigma must be 0-dim, [1] or [N={x.shape[0]}], got [{string.Join(",", sigma.shape)}].");
        using var x32 = x.to(float32);
        using var s32 = sigma.to(float32);
        using var s = s32.reshape(-1, 1, 1, 1);
        using var labels = LabelDim == 0 ? null
            : classLabels is null ? zeros(1, LabelDim, device: x.device)
            : classLabels.to(float32).reshape(-1, LabelDim);

        var (cSkip, cOut) = SkipOutCoefficients(s);
        using (cSkip)
        using (cOut)
        using (var s2 = s.Squared())
        using (var cIn = s2.Plus(SigmaData * SigmaData).rsqrt())
        using (var logS = s.log())
        using (var cNoise = logS.Over(4))
        using (var noiseLabels = cNoise.flatten())
        using (var xIn = cIn * x32)
        using (var xLow = Precision.ComputeType is { } low ? xIn.to(low) : null)
        using (var fx = Model.Forward(xLow ?? xIn, noiseLabels, labels, augmentLabels, sink))
        using (var fx32 = fx.to(float32))
        using (var skipPart = cSkip * x32)
        using (var outPart = cOut * fx32)
            return skipPart.Plus(outPart);
    }

    /// <summary>
    /// Runs D(x, sigma) without gradients and returns detached copies of the raw network's named
    /// intermediate outputs (see <see cref="ActivationSink"/>) plus the denoiser output under <c>"D"</c>.
    /// </summary>
    public Dictionary<string, Tensor> ExtractActivations(Tensor x, Tensor sigma, Tensor? classLabels = null)
    {
        var result = new Dictionary<string, Tensor>();
        using (no_grad())
            result["D"] = Forward(x, sigma, classLabels, null, (name, t) => result[name] = t.detach().clone());
        return result;
    }

    /// <summary>Loads all weights and buffers by name (strict; see <see cref="StateDict.Load"/>).</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> weights) => StateDict.Load(this, weights);

    /// <summary>Detached copies of all weights and buffers, keyed as PyTorch's state_dict (<c>model....</c>).</summary>
    public Dictionary<string, Tensor> ExportStateDict() => StateDict.Export(this);
}
