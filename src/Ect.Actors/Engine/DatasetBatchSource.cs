using Ect.Data;
using Ect.Data.Sources;

namespace Ect.Actors.Engine;

/// <summary>
/// Batches from Ect.Data: the dataset loaded once, a BatchAssembler (ResumableSampler inside) whose state string
/// ("epoch=E;position=P") is what a checkpoint records. Payload: (images [B,C,R,R] in [-1,1], one-hot labels or null).
/// </summary>
public sealed class DatasetBatchSource : IBatchSource, IDescribed
{
    private readonly ImageDataset _data;
    private readonly BatchAssembler _assembler;

    public DatasetBatchSource(string path, int batchSize, long seed, int resolution, bool useLabels, int maxImages)
    {
        _data = DatasetSource.Load(path, maxImages > 0 ? maxImages : null);
        _assembler = new BatchAssembler(_data, batchSize, unchecked((ulong)seed),
            new BatchOptions { Resolution = resolution, UseLabels = useLabels });
        InitialState = _assembler.State.ToString();
    }

    public int Channels => _assembler.Channels;
    public int Resolution => _assembler.Resolution;
    public int LabelDim => _assembler.LabelDim;
    public string InitialState { get; }

    public string Description
    {
        get
        {
            var size = _data.Height != Resolution || _data.Width != Resolution ? $" (trained at {Resolution}x{Resolution})" : "";
            var labels = _data.HasLabels ? $", {_data.ClassCount} classes" + (LabelDim > 0 ? " (used)" : " (not used)") : ", no labels";
            return FormattableString.Invariant($"{_data.SourcePath}: {_data.Count:N0} images of {_data.Channels}x{_data.Height}x{_data.Width}{size}{labels}");
        }
    }

    public void Restore(string state) => _assembler.State = SamplerState.Parse(state);

    public Batch Next()
    {
        var b = _assembler.Next();
        return new Batch(b, (int)b.Images.shape[0], _assembler.State.ToString());
    }

    public void Dispose() => _data.Dispose();
}
