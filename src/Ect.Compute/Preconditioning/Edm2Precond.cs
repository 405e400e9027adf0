using Ect.Compute.Networks;
using Ect.Compute.Networks.Edm2;
using static TorchSharp.torch;

namespace Ect.Compute.Preconditioning;

/// <summary>
/// EDM2's preconditioning around an <see cref="Edm2UNet"/> registered as <c>unet</c> (state-dict keys
/// <c>unet.enc.16x16_conv.weight</c>, ...), as locuslab/ect's imgnet branch (networks_edm2.Precond): x and sigma in
/// float32, sigma reshaped to [-1,1,1,1] (a 0-dim sigma broadcasts), class labels [-1,label_dim] (zeros [1,label_dim]
/// when none are given); c_skip = sd^2/(s^2+sd^2), c_out = s sd/sqrt(s^2+sd^2), c_in = 1/sqrt(sd^2+s^2),
/// c_noise = ln(s)/4; D = c_skip x + c_out F(c_in x, c_noise, labels). Train and eval mode differ only by dropout and
/// forced weight normalisation (no sigma_min shift, unlike <see cref="EctPrecond"/>).
/// Deviation: no log-variance head (<c>logvar_fourier</c>, <c>logvar_linear</c>), as ECT's copy, which comments it out;
/// loading an NVlabs checkpoint drops those tensors. Deviation: no float16 path (use_fp16 acts only on CUDA); CPU float32.
/// </summary>
public sealed class Edm2Precond : Precond
{
    public Edm2UNet Unet { get; }
    public Edm2UNetConfig NetworkConfig { get; }

    public Edm2Precond(Edm2UNetConfig net, double sigmaData = 0.5) : base(nameof(Edm2Precond))
    {
        if (!(sigmaData > 0)) throw new ArgumentException($"Edm2Precond: sigma_data must be positive, got {sigmaData}.");
        NetworkConfig = net;
        SigmaData = sigmaData;
        Unet = new Edm2UNet(net);
        register_module("unet", Unet);
    }

    public override double SigmaData { get; }
    public override int ImgResolution => NetworkConfig.ImgResolution;
    public override int ImgChannels => NetworkConfig.ImgChannels;
    public override int LabelDim => NetworkConfig.LabelDim;

    /// <summary>
    /// Test hook for the plain <see cref="forward"/> (as losses call it): when set, every block's dropout(y) becomes
    /// y * noise from this source (the golden data's stored noise); null (the default) = the real dropout.
    /// </summary>
    public DropoutNoise? DropoutNoiseOverride { get; set; }

    public override Tensor forward(Tensor x, Tensor sigma, Tensor? classLabels) => Forward(x, sigma, classLabels, null, DropoutNoiseOverride);

    /// <summary>The denoiser with an activation sink and a dropout-noise hook for the U-Net (see <see cref="Edm2UNet.Forward"/>).</summary>
    public Tensor Forward(Tensor x, Tensor sigma, Tensor? classLabels, ActivationSink? sink, DropoutNoise? dropoutNoise)
    {
        if (x.dim() != 4 || x.shape[1] != ImgChannels)
            throw new ArgumentException($"Edm2Precond: x must be [N,{ImgChannels},H,W], got [{string.Join(",", x.shape)}].");
        if (sigma.numel() != 1 && sigma.numel() != x.shape[0])
            throw new ArgumentException($"Edm2Precond: sigma must be 0-dim, [1] or [N={x.shape[0]}], got [{string.Join(",", sigma.shape)}].");
        if (classLabels is not null && LabelDim > 0
            && (classLabels.numel() % LabelDim != 0 || classLabels.numel() / LabelDim is var rows && rows != 1 && rows != x.shape[0]))
            throw new ArgumentException($"Edm2Precond: class labels must be [N={x.shape[0]},{LabelDim}] (or [1,{LabelDim}]), got [{string.Join(",", classLabels.shape)}].");
        using var scope = NewDisposeScope();
        var x32 = x.to(float32);
        var s = sigma.to(float32).reshape(-1, 1, 1, 1);
        var labels = LabelDim == 0 ? null
            : classLabels is null ? zeros(1, LabelDim, device: x.device)
            : classLabels.to(float32).reshape(-1, LabelDim);

        double sd = SigmaData, sd2 = sd * sd;
        var s2 = s.Squared();
        var cSkip = ScalarMath.Over(sd2, s2.Plus(sd2));
        var cOut = s.Times(sd) / s2.Plus(sd2).sqrt();
        var cIn = ScalarMath.Over(1, s2.Plus(sd2).sqrt());
        var cNoise = s.flatten().log().Over(4);

        var fx = Unet.Forward(cIn * x32, cNoise, labels, sink, dropoutNoise);
        var d = (cSkip * x32).Plus(cOut * fx.to(float32));
        return d.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Runs D without gradients and returns detached copies of the U-Net's named outputs plus <c>"F"</c> (the raw U-Net
    /// output) and <c>"D"</c>; the copies belong to no dispose scope (the caller disposes them).
    /// </summary>
    public Dictionary<string, Tensor> ExtractActivations(Tensor x, Tensor sigma, Tensor? classLabels, DropoutNoise? dropoutNoise = null)
    {
        var result = new Dictionary<string, Tensor>();
        using (no_grad())
        {
            var d = Forward(x, sigma, classLabels, (name, t) => result[name] = t.detach().clone().DetachFromDisposeScope(), dropoutNoise);
            result["F"] = result["out_conv"];
            result["D"] = d.DetachFromDisposeScope();
        }
        return result;
    }

    /// <summary>Loads all weights and buffers by name (strict; see <see cref="StateDict.Load"/>).</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> weights) => StateDict.Load(this, weights);

    /// <summary>Detached copies of all weights and buffers, keyed as PyTorch's state_dict (<c>unet....</c>).</summary>
    public Dictionary<string, Tensor> ExportStateDict() => StateDict.Export(this);
}
