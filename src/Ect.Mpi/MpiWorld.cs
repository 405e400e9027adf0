using System.Diagnostics;

namespace Ect.Mpi;

/// <summary>
/// MPI_COMM_WORLD of an mpirun job: rank, size and the collectives ect needs (in-place sum all-reduce, broadcast,
/// barrier, abort). One per process (<see cref="Init"/>); calls may come from several threads but never at the same
/// time (MPI_THREAD_SERIALIZED). Every collective must be called by every rank in the same order.
/// </summary>
public sealed unsafe class MpiWorld
{
    /// <summary>MPI_THREAD_SERIALIZED: the trainer's thread and the main thread call MPI, one at a time.</summary>
    private const int ThreadSerialized = 2;
    /// <summary>Element count per MPI call (its count argument is an int).</summary>
    private const int Chunk = 1 << 30;

    private static MpiWorld? _current;
    private static readonly object Gate = new();
    private readonly OpenMpiLibrary _mpi;
    private bool _finalized;

    private MpiWorld(OpenMpiLibrary mpi, int rank, int size) { _mpi = mpi; Rank = rank; Size = size; }

    public int Rank { get; }
    public int Size { get; }

    /// <summary>The world of this process once <see cref="Init"/> ran, else null.</summary>
    public static MpiWorld? Current => _current;

    /// <summary>
    /// Loads libmpi and calls MPI_Init_thread (once per process; later calls return the same world). Only for a
    /// process mpirun started (<see cref="MpiLaunch.Detect()"/>): MPI_Init in a plain process would make a 1-rank singleton job.
    /// </summary>
    public static MpiWorld Init()
    {
        lock (Gate)
        {
            if (_current != null) return _current;
            var mpi = OpenMpiLibrary.Load();
            int provided = 0, rank = 0, size = 0;
            mpi.Check(mpi.InitThread(null, null, ThreadSerialized, &provided), "MPI_Init_thread");
            if (provided < ThreadSerialized)
                throw new MpiException($"MPI_Init_thread gave thread level {provided}; ect needs {ThreadSerialized} (MPI_THREAD_SERIALIZED). Use an Open MPI built with thread support.");
            mpi.Check(mpi.CommRank(mpi.CommWorld, &rank), "MPI_Comm_rank");
            mpi.Check(mpi.CommSize(mpi.CommWorld, &size), "MPI_Comm_size");
            return _current = new MpiWorld(mpi, rank, size);
        }
    }

    /// <summary>Elementwise sum over all ranks, in place: afterwards every rank holds the same sums.</summary>
    public void AllReduceSum(Span<float> data) => AllReduce(data, _mpi.Float, _mpi.OpSum, "MPI_Allreduce(float, sum)");
    public void AllReduceSum(Span<double> data) => AllReduce(data, _mpi.Double, _mpi.OpSum, "MPI_Allreduce(double, sum)");
    public void AllReduceSum(Span<long> data) => AllReduce(data, _mpi.Long, _mpi.OpSum, "MPI_Allreduce(long, sum)");
    public void AllReduceMax(Span<long> data) => AllReduce(data, _mpi.Long, _mpi.OpMax, "MPI_Allreduce(long, max)");

    private void AllReduce<T>(Span<T> data, nint type, nint op, string call) where T : unmanaged
    {
        EnsureLive(call);
        fixed (T* p = data)
            for (int off = 0; off < data.Length; off += Chunk)
            {
                int n = Math.Min(Chunk, data.Length - off);
                _mpi.Check(_mpi.Allreduce(OpenMpiLibrary.InPlace, (nint)(p + off), n, type, op, _mpi.CommWorld), call);
            }
    }

    /// <summary>MPI_Bcast of bytes from <paramref name="root"/>: the root sends <paramref name="data"/>, the others receive into it (same length everywhere).</summary>
    public void Broadcast(Span<byte> data, int root = 0)
    {
        EnsureLive("MPI_Bcast");
        fixed (byte* p = data)
            for (int off = 0; off < data.Length; off += Chunk)
                _mpi.Check(_mpi.Bcast((nint)(p + off), Math.Min(Chunk, data.Length - off), _mpi.Byte, root, _mpi.CommWorld), "MPI_Bcast");
    }

    /// <summary>
    /// A broadcast that waits without spinning a core: MPI_Ibcast, then MPI_Test with <paramref name="idleSleep"/>
    /// between tests once <paramref name="spinFor"/> (default 1 ms) has passed (a blocking MPI_Bcast busy-polls for as
    /// long as the root takes, e.g. a paused run); within <paramref name="spinFor"/> it tests again after a
    /// sched_yield, so a message that is about to come is seen at once and other threads still get the core.
    /// <paramref name="whileWaiting"/> runs between tests (a liveness check may throw). Small messages only (one call).
    /// </summary>
    public void BroadcastPolling(Span<byte> data, int root, TimeSpan idleSleep, Action? whileWaiting = null, TimeSpan? spinFor = null)
    {
        var spin = spinFor ?? DefaultSpin;
        EnsureLive("MPI_Ibcast");
        nint request = 0;
        int done = 0;
        var clock = Stopwatch.StartNew();
        fixed (byte* p = data)
        {
            _mpi.Check(_mpi.Ibcast((nint)p, data.Length, _mpi.Byte, root, _mpi.CommWorld, &request), "MPI_Ibcast");
            while (true)
            {
                _mpi.Check(_mpi.Test(&request, &done, 0), "MPI_Test");
                if (done != 0) return;
                if (clock.Elapsed < spin) { Spin(clock); continue; }
                whileWaiting?.Invoke();
                Thread.Sleep(idleSleep);
            }
        }
    }

    /// <summary>
    /// Sends one long to rank <paramref name="dest"/> with <paramref name="tag"/> (MPI_Send; a message this small goes
    /// out eagerly, so the call does not wait for the receiver to post its receive).
    /// </summary>
    public void SendLong(long value, int dest, int tag)
    {
        EnsureLive("MPI_Send");
        _mpi.Check(_mpi.Send((nint)(&value), 1, _mpi.Long, dest, tag, _mpi.CommWorld), "MPI_Send");
    }

    /// <summary>
    /// Receives one long with <paramref name="tag"/> from every other rank (MPI_Irecv each, then MPI_Test polled; after
    /// the first millisecond it sleeps <paramref name="idleSleep"/> between tests, so a long wait costs no core). Returns
    /// true with <paramref name="values"/>[r] = rank r's value once all arrived. After <paramref name="timeout"/> it
    /// cancels the receives still open and returns false, <paramref name="missing"/> naming the ranks not heard from:
    /// the point-to-point answer to "which rank is late", which a collective cannot give (it only completes or waits).
    /// Within <paramref name="spinFor"/> (default 1 ms) it tests again after a sched_yield instead of sleeping.
    /// </summary>
    public bool TryReceiveFromAll(int tag, Span<long> values, TimeSpan timeout, TimeSpan idleSleep, out IReadOnlyList<int> missing, TimeSpan? spinFor = null)
    {
        var spin = spinFor ?? DefaultSpin;
        EnsureLive("MPI_Irecv");
        if (values.Length != Size) throw new ArgumentException($"values holds {values.Length} slots, the world has {Size} ranks", nameof(values));
        var buffer = GC.AllocateArray<long>(Size, pinned: true);
        var requests = GC.AllocateArray<nint>(Size, pinned: true);
        var open = new List<int>();
        fixed (long* b = buffer)
        fixed (nint* req = requests)
        {
            for (int r = 0; r < Size; r++)
            {
                if (r == Rank) continue;
                _mpi.Check(_mpi.Irecv((nint)(b + r), 1, _mpi.Long, r, tag, _mpi.CommWorld, req + r), "MPI_Irecv");
                open.Add(r);
            }
            var clock = Stopwatch.StartNew();
            while (true)
            {
                for (int i = open.Count - 1; i >= 0; i--)
                {
                    int done = 0;
                    _mpi.Check(_mpi.Test(req + open[i], &done, 0), "MPI_Test");
                    if (done != 0) open.RemoveAt(i);
                }
                if (open.Count == 0) break;
                if (clock.Elapsed >= timeout)
                {
                    foreach (var r in open)
                    {
                        _mpi.Check(_mpi.Cancel(req + r), "MPI_Cancel");
                        _mpi.Check(_mpi.Wait(req + r, 0), "MPI_Wait");
                    }
                    missing = open;
                    return false;
                }
                if (clock.Elapsed < spin) { Spin(clock); continue; }
                Thread.Sleep(idleSleep);
            }
        }
        buffer.CopyTo(values);
        missing = [];
        return true;
    }

    /// <summary>How long the polling waits test without sleeping unless told otherwise.</summary>
    public static readonly TimeSpan DefaultSpin = TimeSpan.FromMilliseconds(1);

    /// <summary>
    /// Between two tests while spinning: a short busy wait for the first millisecond, then sched_yield (a thread of this
    /// process or another that shares the core, e.g. rank 0's daemon threads, runs first; alone, the test comes at once).
    /// </summary>
    private static void Spin(Stopwatch clock)
    {
        if (clock.ElapsedMilliseconds < 1) Thread.SpinWait(64);
        else Thread.Yield();
    }

    public void Barrier()
    {
        EnsureLive("MPI_Barrier");
        _mpi.Check(_mpi.Barrier(_mpi.CommWorld), "MPI_Barrier");
    }

    /// <summary>Ends every rank of the job (mpirun reports the code). Does not return.</summary>
    public void Abort(int code)
    {
        _mpi.Abort(_mpi.CommWorld, code);
        Environment.Exit(code); // not reached: MPI_Abort kills this process too
    }

    /// <summary>MPI_Finalize (once; a collective: every rank calls it before exiting normally).</summary>
    public void Finalize()
    {
        lock (Gate)
        {
            if (_finalized) return;
            _finalized = true;
            _mpi.Check(_mpi.Finalize(), "MPI_Finalize");
        }
    }

    private void EnsureLive(string call)
    {
        if (_finalized) throw new MpiException($"{call} after MPI_Finalize");
    }
}
