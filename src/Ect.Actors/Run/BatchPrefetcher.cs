using System.Collections.Concurrent;
using Ect.Actors.Engine;

namespace Ect.Actors.Run;

/// <summary>
/// The data loader: a thread that draws batches from the resumable source ahead of the trainer into a
/// bounded queue (back-pressure: it blocks when the trainer is <c>capacity</c> batches behind).
/// Each batch carries the sampler state after it, so the checkpoint records the state of the batches
/// actually consumed, not of those prepared ahead.
/// </summary>
public sealed class BatchPrefetcher : IDisposable
{
    private readonly BlockingCollection<Batch> _queue;
    private readonly CancellationTokenSource _cts = new();
    private readonly Thread _thread;
    private readonly IBatchSource _source;
    private Exception? _error;

    public BatchPrefetcher(IBatchSource source, string state, int capacity)
    {
        _source = source;
        _source.Restore(state);
        _queue = new BlockingCollection<Batch>(capacity);
        _thread = new Thread(Run) { IsBackground = true, Name = "ect-data-loader" };
        _thread.Start();
    }

    private void Run()
    {
        try
        {
            while (!_cts.IsCancellationRequested)
            {
                var b = _source.Next();
                try { _queue.Add(b, _cts.Token); }
                catch (OperationCanceledException) { b.Dispose(); return; }
            }
        }
        catch (OperationCanceledException) { }
        catch (Exception e) { _error = e; _queue.CompleteAdding(); }
    }

    /// <summary>The next batch (blocks until the loader has one). Throws the loader's error if it failed.</summary>
    public Batch Take()
    {
        try { return _queue.Take(_cts.Token); }
        catch (InvalidOperationException) when (_error != null) { throw new IOException($"data loader failed: {_error.Message}", _error); }
    }

    public void Dispose()
    {
        _cts.Cancel();
        _thread.Join(TimeSpan.FromSeconds(10));
        while (_queue.TryTake(out var b)) b.Dispose();
        _source.Dispose();
        _cts.Dispose();
    }
}
