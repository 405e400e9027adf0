using Ect.Compute.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Preconditioning;

/// <summary>
/// Shared body of EDM-style preconditioners around a <see cref="SongUNet"/> registered as submodule
/// <c>model</c> (state-dict keys <c>model.enc.32x32_conv.weight</c>, ...), following EDM's
/// <c>EDMPrecond.forward</c>: x cast to float32, sigma reshaped to [-1,1,1,1] (a 0-dim or [1] sigma
/// broadcasts over the batch), class labels as [-1, label_dim] float32 (zeros [1,label_dim] when not
/// given; none when label_dim is 0), D = c_skip x + c_out F(c_in x, c_noise). CPU only, so EDM's fp16
/// path (use_fp16 / force_fp32) does not apply: everything runs in float32.
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

    /// <summary>(c_skip, c_out) for float32 sigma of shape [-1,1,1,1] in the current mode.</summary>
    protected abstract (Tensor CSkip, Tensor COut) SkipOutCoefficients(Tensor sigma);

    public override Tensor forward(Tensor x, Tensor sigma, Tensor? classLabels) =>
        Forward(x, sigma, classLabels, null, null);

    /// <summary>
    /// The preconditioned denoiser with optional augmentation labels and an activation sink for the raw network.
    /// </summary>
    public Tensor Forward(Tensor x, Tensor sigma, Tensor? classLabels, Tensor? augmentLabels, ActivationSink? sink)
    {
        using var scope = NewDisposeScope();
        if (x.dim() != 4 || x.shape[1] != ImgChannels)
            throw new ArgumentException($"{GetName()}: x must be [N,{ImgChannels},H,W], got [{string.Join(",", x.shape)}].");
        var x32 = x.to(float32);
        var s = sigma.to(float32).reshape(-1, 1, 1, 1);
        if (s.shape[0] != 1 && s.shape[0] != x.shape[0])
            throw new ArgumentException($"{GetName()}: sigma must be 0-dim, [1] or [N={x.shape[0]}], got [{string.Join(",", sigma.shape)}].");
        Tensor? labels = null;
        if (LabelDim > 0)
            labels = classLabels is null ? zeros(1, LabelDim, device: x.device) : classLabels.to(float32).reshape(-1, LabelDim);

        var (cSkip, cOut) = SkipOutCoefficients(s);
        var cIn = (s.square() + SigmaData * SigmaData).rsqrt();
        var cNoise = s.log() / 4;

        var fx = Model.Forward(cIn * x32, cNoise.flatten(), labels, augmentLabels, sink);
        var d = cSkip * x32 + cOut * fx.to(float32);
        return d.MoveToOuterDisposeScope();
    }

    /// <summary>Loads all weights and buffers by name (strict; see <see cref="StateDict.Load"/>).</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> weights) => StateDict.Load(this, weights);

    /// <summary>Detached copies of all weights and buffers, keyed as PyTorch's state_dict (<c>model....</c>).</summary>
    public Dictionary<string, Tensor> ExportStateDict() => StateDict.Export(this);
}
