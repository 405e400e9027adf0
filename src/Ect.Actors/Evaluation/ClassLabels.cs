namespace Ect.Actors.Evaluation;

/// <summary>
/// Which class each generated image of a class-conditional network gets, by its index in the image set (the caller's
/// choice; an unconditional network ignores it). <see cref="Cycle"/> (image i: class i mod L) is the default of
/// `ect eval` and the daemon's fd-resnet18 alike, so the two measure the same images.
/// </summary>
public abstract record ClassLabels
{
    /// <summary>The class of image <paramref name="setIndex"/> for a network of <paramref name="labelDim"/> classes.</summary>
    public abstract long Of(long setIndex, int labelDim);

    /// <summary>Image i gets class i mod L: every class equally often in a set of a multiple of L images.</summary>
    public sealed record Cycle : ClassLabels
    {
        public override long Of(long setIndex, int labelDim) => setIndex % labelDim;
    }

    /// <summary>Every image gets class <see cref="Class"/> (`ect eval --class K`).</summary>
    public sealed record One(int Class) : ClassLabels
    {
        public override long Of(long setIndex, int labelDim) =>
            Class >= 0 && Class < labelDim ? Class
                : throw new ArgumentOutOfRangeException(nameof(Class), Class, $"class {Class}: the network has classes 0..{labelDim - 1}");
    }

    /// <summary>
    /// A row per class in a grid of <see cref="Columns"/> images a row: image i gets class (i / Columns) mod L, so row r
    /// shows class r mod L (the daemon's sample grids: Png.SaveGrid's rows hold ceil(sqrt(count)) images).
    /// </summary>
    public sealed record RowPerClass(int Columns) : ClassLabels
    {
        public override long Of(long setIndex, int labelDim) => setIndex / Math.Max(1, Columns) % labelDim;

        /// <summary>The rows of a square-ish grid of <paramref name="count"/> images (Png.SaveGrid's layout).</summary>
        public static RowPerClass ForGrid(int count) => new(Math.Max(1, (int)Math.Ceiling(Math.Sqrt(count))));
    }

    public static ClassLabels Default { get; } = new Cycle();
}
