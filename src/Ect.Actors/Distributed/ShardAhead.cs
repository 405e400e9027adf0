using Ect.Actors.Engine;
using Ect.Data;

namespace Ect.Actors.Distributed;

/// <summary>
/// A worker's shard of the next batch, assembled ahead: after a step the next batch almost always starts where this
/// one ended, so the worker assembles it while rank 0 ends its step and sends the next decision (time the worker
/// would otherwise spend waiting), not after the decision came. When rank 0 says otherwise (a rollback, a checkpoint
/// load), the shard ahead is dropped and the right one assembled: the same rows either way (assembly is a function of
/// the start alone), so the bits do not depend on it.
/// </summary>
internal sealed class ShardAhead(DatasetBatchSource source) : IDisposable
{
    private Batch? _ahead;
    private SamplerState _start;

    /// <summary>Shards taken from the ones assembled ahead / assembled on demand (the profile reports them).</summary>
    public long Hits { get; private set; }
    public long Misses { get; private set; }

    /// <summary>This rank's shard of the batch starting at <paramref name="start"/> (the caller disposes it).</summary>
    public Batch Take(SamplerState start)
    {
        if (_ahead is { } ahead)
        {
            _ahead = null;
            if (_start == start) { Hits++; return ahead; }
            ahead.Dispose();
        }
        Misses++;
        return DataShard.At(source, start);
    }

    /// <summary>Assembles the shard of the batch that follows <paramref name="previous"/>.</summary>
    public void PrepareAfter(Batch previous)
    {
        Drop();
        _start = SamplerState.Parse(previous.StateAfter);
        _ahead = DataShard.At(source, _start);
    }

    private void Drop()
    {
        _ahead?.Dispose();
        _ahead = null;
    }

    public void Dispose() => Drop();
}
