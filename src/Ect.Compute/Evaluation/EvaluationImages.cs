using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Evaluation;

/// <summary>Input checks and channel handling shared by the feature extractors.</summary>
public static class EvaluationImages
{
    /// <summary>
    /// Checks that <paramref name="images"/> is [N,C,H,W] floating point with C = 1 or 3 and returns a float32 RGB
    /// view/copy [N,3,H,W] (grey repeated to three equal channels, as torchvision's Grayscale(3) and pytorch-fid do).
    /// The caller disposes the result (it may share storage with the input).
    /// </summary>
    public static Tensor ToRgbFloat32(Tensor images, string extractorName) => ToRgb(images, extractorName, ScalarType.Float32);

    /// <summary>As <see cref="ToRgbFloat32"/>, in the given floating dtype (float64 for a float64 replica of a network).</summary>
    public static Tensor ToRgb(Tensor images, string extractorName, ScalarType dtype)
    {
        var x = ToFloating(images, extractorName, dtype);
        if (x.shape[1] != 1) return x;
        var rgb = x.expand(-1, 3, -1, -1).contiguous();
        x.Dispose();
        return rgb;
    }

    /// <summary>
    /// The checks of <see cref="ToRgb"/> without the channel expansion: [N,C,H,W] in <paramref name="dtype"/> on the CPU,
    /// C = 1 or 3 kept (an extractor whose per-channel work is linear can resize one grey plane instead of three).
    /// The caller disposes the result (it may share storage with the input).
    /// </summary>
    public static Tensor ToFloating(Tensor images, string extractorName, ScalarType dtype)
    {
        if (images.dim() != 4)
            throw new ArgumentException(
                $"{extractorName}: images must be a 4-d tensor [N,C,H,W] in [-1,1]; got shape [{string.Join(",", images.shape)}].",
                nameof(images));
        if (!torch.is_floating_point(images))
            throw new ArgumentException(
                $"{extractorName}: images must be floating point in [-1,1]; got dtype {images.dtype}. " +
                "Convert uint8 pixels p with p / 127.5 - 1.", nameof(images));
        var c = images.shape[1];
        if (c != 1 && c != 3)
            throw new ArgumentException(
                $"{extractorName}: images must have 1 (grey) or 3 (RGB) channels; got {c} (shape [{string.Join(",", images.shape)}]).",
                nameof(images));
        if (images.shape[0] == 0)
            throw new ArgumentException($"{extractorName}: the batch is empty.", nameof(images));
        var x = images.device_type == DeviceType.CPU ? images.to_type(dtype) : images.cpu().to_type(dtype);
        // to_type may hand back the input object itself; make sure the caller can always dispose what it gets.
        return ReferenceEquals(x, images) ? images.detach() : x;
    }
}
