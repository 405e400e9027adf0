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

    /// <summary>The data set itself (a data-parallel worker checks that it opened the same one as rank 0).</summary>
    public ImageDataset Dataset => _data;

    /// <summary>
    /// A data-parallel rank's part of every batch (Distributed/): <see cref="Next"/> still draws the whole global batch's
    /// indices (the sampler advances by the batch size, as in one process) but assembles only images
    /// [Rank * B/K, (Rank + 1) * B/K), with the flips they have in the whole batch, so the shard holds exactly those rows
    /// of the global batch. Null: the whole batch. Set it before the first batch.
    /// </summary>
    public (int Rank, int Size)? Shard { get; set; }

    public Batch Next()
    {
        if (Shard is { } shard) return NextShard(shard.Rank, shard.Size);
        var b = _assembler.Next();
        return new Batch(b, (int)b.Images.shape[0], _assembler.State.ToString());
    }

    private int[]? _indices;
    private readonly System.Diagnostics.Stopwatch _assembly = new();
    private long _shards;

    /// <summary>Time spent assembling shards (<see cref="Shard"/> set), and how many: the data-parallel profile reports it.</summary>
    public TimeSpan AssemblyTime { get { lock (_assembly) return _assembly.Elapsed; } }
    public long ShardsAssembled => Interlocked.Read(ref _shards);

    /// <summary>Count: the global batch's images (what the step trains on over all ranks: the run's img/s).</summary>
    private Batch NextShard(int rank, int size)
    {
        lock (_assembly) _assembly.Start();
        int global = _assembler.BatchSize, n = global / size, first = rank * n;
        _indices ??= new int[global];
        var start = _assembler.State;
        _assembler.Sampler.NextIndices(_indices);
        var images = TorchSharp.torch.empty([n, Channels, Resolution, Resolution], TorchSharp.torch.ScalarType.Float32);
        var labels = LabelDim > 0 ? TorchSharp.torch.empty([n, LabelDim], TorchSharp.torch.ScalarType.Float32) : null;
        var imgSpan = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(images.bytes);
        var labSpan = labels is null ? Span<float>.Empty : System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(labels.bytes);
        // The k-th image of the shard is the (first + k)-th of the batch: its flip is drawn at that position.
        _assembler.Assemble(_indices.AsSpan(first, n), start.Advance(first, _data.Count), imgSpan, labSpan);
        lock (_assembly) _assembly.Stop();
        Interlocked.Increment(ref _shards);
        return new Batch(new ImageBatch(images, labels, start), global, _assembler.State.ToString());
    }

    public void Dispose() => _data.Dispose();
}
