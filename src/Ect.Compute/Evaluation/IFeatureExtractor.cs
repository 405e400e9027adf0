using static TorchSharp.torch;

namespace Ect.Compute.Evaluation;

/// <summary>
/// Maps a batch of images to one feature vector per image, the input of a Frechet distance.
/// Implementations: <see cref="InceptionV3Fid"/> ("FID-InceptionV3", 2048-d) and
/// <see cref="ResNet18OnnxExtractor"/> ("FD-ResNet18", 512-d).
/// </summary>
public interface IFeatureExtractor : IDisposable
{
    /// <summary>Metric name the extractor stands for, e.g. "FD-ResNet18". Part of every statistics cache key.</summary>
    string Name { get; }

    /// <summary>Length of one feature vector.</summary>
    int Dimension { get; }

    /// <summary>
    /// images: [N,C,H,W] floating point in [-1,1] (the generator's and dataset's range), C = 1 (grey, repeated to
    /// three channels) or 3 (RGB). Any H, W: the extractor resizes to its own input size. Returns a new float32 (float64
    /// for an InceptionV3Fid moved to float64)
    /// CPU tensor [N, Dimension] that the caller disposes. Does not dispose <paramref name="images"/>.
    /// </summary>
    Tensor ExtractFeatures(Tensor images);
}
