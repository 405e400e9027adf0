namespace Ect.Data.Sources;

/// <summary>One image read from a source: CHW uint8 pixels, its label (-1 when none) and where it came from.</summary>
public sealed record SourceImage(string Entry, int Channels, int Height, int Width, byte[] Pixels, int Label);

/// <summary>
/// A dataset on disk in one of the supported formats. <see cref="Read"/> yields images in the dataset's own order
/// (file order for IDX/CIFAR, ordinal path order for folders and zips, as EDM sorts them) and throws
/// <see cref="DatasetException"/> for anything it cannot use.
/// </summary>
public interface IImageSource : IDisposable
{
    /// <summary>The path the user gave.</summary>
    string Path { get; }
    /// <summary>Human name of the format, e.g. "IDX (MNIST)", "CIFAR-10 binary", "EDM zip".</summary>
    string Format { get; }
    /// <summary>Number of images the source holds (known before decoding).</summary>
    int Count { get; }
    /// <summary>Whether the images carry class labels.</summary>
    bool HasLabels { get; }
    /// <summary>Class names when the source knows them (CIFAR-10, class folders), else null.</summary>
    IReadOnlyList<string>? ClassNames { get; }
    /// <summary>The first <paramref name="max"/> images (all when null), in order.</summary>
    IEnumerable<SourceImage> Read(int? max = null);
}
