using System.Buffers.Binary;
using Ect.Mpi;

namespace Ect.Actors.Distributed;

/// <summary>What rank 0 tells the other ranks (one decision per packet, in the order rank 0 takes them).</summary>
public enum Decision
{
    /// <summary>Build the engine: the run's effective configuration and the data set's shape.</summary>
    Engine = 1,
    /// <summary>Load rank 0's whole training state (phase + TrainState bytes): a fresh start or a checkpoint load.</summary>
    Sync = 2,
    /// <summary>One training step: phase, stage, learning rate and the global batch.</summary>
    Step = 3,
    /// <summary>Compare weights+EMA digests, then one all-reduce of the mismatch flags.</summary>
    Digest = 4,
    /// <summary>Dispose the engine (rank 0's trainer stopped: a rollback or the end of the run).</summary>
    DisposeEngine = 5,
    /// <summary>The run is over: finalize and exit.</summary>
    Finish = 6,
}

/// <summary>
/// Rank 0 -> other ranks, over broadcasts: a 16-byte header (decision, payload length) sent with a non-blocking
/// broadcast that the receivers poll with a short sleep (a paused run costs them no core), then the payload with a
/// blocking broadcast. <see cref="Gate"/> serialises every MPI call of this process (the trainer's thread and the
/// main thread both use it; MPI_THREAD_SERIALIZED). After <see cref="Decision.Finish"/> nothing more is sent.
/// </summary>
public sealed class RankLink(MpiWorld world)
{
    private const int HeaderBytes = 16;
    /// <summary>Refuses a header whose length no real packet has (a packet is a batch or a training state).</summary>
    private const long MaxPayload = 16L << 30;

    /// <summary>
    /// How long a rank waiting for another in a step (a worker for rank 0's next decision, rank 0 for the workers'
    /// notes) tests without sleeping, yielding the core between tests: the ranks are usually within a few milliseconds
    /// of each other, and a sleep there adds its whole length to every step of both ranks. Past it, waits sleep between
    /// tests (a paused run, an evaluation on rank 0), so a long wait costs no core.
    /// </summary>
    public static readonly TimeSpan WaitSpin = TimeSpan.FromMilliseconds(20);

    public object Gate { get; } = new();
    public MpiWorld World { get; } = world;
    public bool Finished { get; private set; }

    /// <summary>
    /// Why MPI can no longer be used (a rank hung mid-step: a collective is left half-done), else null. Set once;
    /// afterwards nothing is sent, and the end of the run aborts the job (DataParallelLaunch) instead of finishing it.
    /// </summary>
    public string? Broken { get; private set; }

    public void Break(string reason) { lock (Gate) Broken ??= reason; }

    public void Send(Decision decision, byte[] payload)
    {
        lock (Gate)
        {
            if (Finished) throw new InvalidOperationException($"rank 0 sent {decision} after Finish");
            if (Broken is { } why) throw new InvalidOperationException($"rank 0 cannot send {decision}: the job's MPI state is broken ({why})");
            if (decision == Decision.Finish) Finished = true;
            var header = new byte[HeaderBytes];
            BinaryPrimitives.WriteInt32LittleEndian(header, (int)decision);
            BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(8), payload.Length);
            World.BroadcastPolling(header, 0, TimeSpan.FromMilliseconds(1));
            if (payload.Length > 0) World.Broadcast(payload);
        }
    }

    public (Decision Decision, byte[] Payload) Receive(TimeSpan idleSleep)
    {
        lock (Gate)
        {
            var header = new byte[HeaderBytes];
            World.BroadcastPolling(header, 0, idleSleep, spinFor: WaitSpin);
            var decision = (Decision)BinaryPrimitives.ReadInt32LittleEndian(header);
            var length = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(8));
            if (!Enum.IsDefined(decision) || length < 0 || length > MaxPayload)
                throw new InvalidDataException($"rank {World.Rank}: a packet from rank 0 with decision {(int)decision} and length {length} (different ect versions in one job?)");
            var payload = new byte[length];
            if (length > 0) World.Broadcast(payload);
            if (decision == Decision.Finish) Finished = true;
            return (decision, payload);
        }
    }
}
