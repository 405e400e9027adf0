using System.Diagnostics;
using System.Globalization;
using Ect.Mpi;

// ect-mpi-probe MODE: collectives | idle-wait | abort | late-rank (tests), note-latency | allreduce-tail | step (measurements, issue 20). Prints "rank R/S MODE ok ..." or exits 1 with what was wrong.
var mode = args.Length > 0 ? args[0] : "collectives";
var launch = MpiLaunch.Detect() ?? throw new InvalidOperationException("not started by mpirun");
var world = MpiWorld.Init();
void Fail(string what) { Console.Error.WriteLine($"rank {world.Rank}: {what}"); Environment.Exit(1); }
if (world.Rank != launch.Rank || world.Size != launch.Size) Fail($"MPI says {world.Rank}/{world.Size}, the environment {launch.Rank}/{launch.Size}");
int r = world.Rank, k = world.Size;

switch (mode)
{
    case "collectives":
    {
        // Sum of (rank + 1) * (i + 1) over ranks = (i + 1) * k (k + 1) / 2; 3 M floats crosses one message's usual segment size.
        var f = new float[3_000_001];
        for (int i = 0; i < f.Length; i++) f[i] = (r + 1) * ((i % 1000) + 1);
        world.AllReduceSum(f);
        for (int i = 0; i < f.Length; i++)
            if (f[i] != ((i % 1000) + 1) * k * (k + 1) / 2f) Fail($"float all-reduce: element {i} = {f[i]}");
        var d = new[] { 0.1 * (r + 1), 1e300 };
        world.AllReduceSum(d);
        var expectD = Enumerable.Range(1, k).Sum(x => 0.1 * x);
        if (Math.Abs(d[0] - expectD) > 1e-12 || d[1] != 1e300 * k) Fail($"double all-reduce: {d[0]}, {d[1]}");
        var l = new[] { (long)r << 40, 1L };
        world.AllReduceSum(l);
        if (l[0] != ((long)k * (k - 1) / 2) << 40 || l[1] != k) Fail($"long all-reduce: {l[0]}, {l[1]}");
        var m = new[] { (long)r };
        world.AllReduceMax(m);
        if (m[0] != k - 1) Fail($"long max: {m[0]}");
        var bytes = new byte[100_000];
        if (r == 0) for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(i * 7);
        world.Broadcast(bytes);
        for (int i = 0; i < bytes.Length; i++) if (bytes[i] != (byte)(i * 7)) Fail($"broadcast: byte {i} = {bytes[i]}");
        world.Barrier();
        Console.WriteLine($"rank {r}/{k} collectives ok");
        break;
    }
    case "idle-wait":
    {
        // Rank 0 sleeps 1.5 s before it broadcasts; the others wait in BroadcastPolling and report the CPU time that cost.
        var packet = new byte[16];
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        if (r == 0) { Thread.Sleep(1500); packet[0] = 42; }
        world.BroadcastPolling(packet, 0, TimeSpan.FromMilliseconds(2));
        var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
        if (packet[0] != 42) Fail($"polling broadcast: got {packet[0]}");
        Console.WriteLine(FormattableString.Invariant($"rank {r}/{k} idle-wait ok wall {clock.Elapsed.TotalSeconds:F3} cpu {cpu:F3}"));
        break;
    }
    case "abort":
    {
        // The last rank aborts with code 3 while the others wait in a barrier: mpirun must end them all.
        if (r == k - 1) { Console.WriteLine($"rank {r}/{k} aborting"); Console.Out.Flush(); Thread.Sleep(300); world.Abort(3); }
        world.Barrier();
        Fail("the barrier returned although a rank aborted");
        break;
    }
    case "late-rank":
    {
        // Round 1: every rank but the last tells rank 0 it arrived; rank 0 gives up after 1 s and names the last rank.
        // Round 2: all arrive, rank 0 gets every value. Rank 0 prints what it saw.
        var values = new long[k];
        if (r != 0 && r != k - 1) world.SendLong(10 + r, 0, tag: 1);
        if (r == 0)
        {
            var clock = Stopwatch.StartNew();
            if (world.TryReceiveFromAll(1, values, TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(1), out var missing))
                Fail("round 1 completed although the last rank never sent");
            if (clock.Elapsed < TimeSpan.FromSeconds(0.9)) Fail($"round 1 gave up after {clock.Elapsed.TotalSeconds:F2} s, before its 1 s timeout");
            Console.WriteLine($"rank 0/{k} round 1 missing [{string.Join(",", missing)}]");
        }
        world.Barrier();
        if (r != 0) world.SendLong(100 + r, 0, tag: 2);
        if (r == 0)
        {
            if (!world.TryReceiveFromAll(2, values, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(1), out var missing))
                Fail($"round 2 timed out, missing {string.Join(",", missing)}");
            Console.WriteLine($"rank 0/{k} round 2 values [{string.Join(",", values.Skip(1))}]");
        }
        world.Barrier();
        Console.WriteLine($"rank {r}/{k} late-rank ok");
        break;
    }
    case "note-latency":
    {
        // The data-parallel step's tail, 40 times: both ranks compute (spin) ~W ms, the worker sends its note
        // (MPI_Send of one long) then enters the float all-reduce of N floats; rank 0 receives the note as StepWatch does
        // (TryReceiveFromAll, 20 ms of testing, 1 ms sleeps) then joins the all-reduce. Rank 0 prints, per round, how
        // long after the worker's send (CLOCK_MONOTONIC, one host) the note was seen. Args: N floats, W ms.
        int n = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 300_000;
        int work = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 50;
        var grad = new float[n];
        var values = new long[k];
        var lat = new List<double>();
        for (int round = 0; round < 40; round++)
        {
            world.Barrier();
            var spin = Stopwatch.StartNew();
            while (spin.ElapsedMilliseconds < work + (r == 0 ? 0 : 3)) { }
            if (r != 0) world.SendLong(Stopwatch.GetTimestamp(), 0, tag: 7);
            else
            {
                if (!world.TryReceiveFromAll(7, values, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(1), out _, TimeSpan.FromMilliseconds(20)))
                    Fail("note never came");
                lat.Add(Stopwatch.GetElapsedTime(values.Skip(1).Max()).TotalMilliseconds);
            }
            world.AllReduceSum(grad);
        }
        if (r == 0)
            Console.WriteLine(FormattableString.Invariant($"rank 0/{k} note-latency ok: ms from send to seen, median {lat.Order().ElementAt(lat.Count / 2):F3}, max {lat.Max():F3}, rounds {string.Join(" ", lat.Select(x => x.ToString("F2", CultureInfo.InvariantCulture)))}"));
        break;
    }
    case "allreduce-tail":
    {
        // Does a rank's all-reduce wait for the other rank's NEXT MPI call? 30 rounds: a barrier, the all-reduce of N
        // floats (timed on each rank; rank 0 arrives L ms after the worker), then rank 0 computes G ms without calling MPI (as its optimizer update does)
        // before the next round's barrier. Every rank prints its median all-reduce time. Args: N floats, G ms, L ms.
        int n = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 300_000;
        int gap = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 15;
        int lead = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 0;
        var grad = new float[n];
        var times = new List<double>();
        for (int round = 0; round < 30; round++)
        {
            world.Barrier();
            // As in the data-parallel step, the worker reaches the all-reduce first (rank 0 computes `lead` ms more).
            if (r == 0) { var spin = Stopwatch.StartNew(); while (spin.ElapsedMilliseconds < lead) { } }
            var t = Stopwatch.StartNew();
            world.AllReduceSum(grad);
            times.Add(t.Elapsed.TotalMilliseconds);
            if (r == 0) { var spin = Stopwatch.StartNew(); while (spin.ElapsedMilliseconds < gap) { } }
        }
        Console.WriteLine(FormattableString.Invariant($"rank {r}/{k} allreduce-tail ok: {n} floats, rank 0 {lead} ms late and silent {gap} ms after it: median {times.Order().ElementAt(times.Count / 2):F2} ms, min {times.Min():F2}"));
        break;
    }
    case "step":
    {
        // The data-parallel step's MPI calls in their order, 30 rounds, with compute as spins: rank 0 broadcasts the
        // 16-byte header (Ibcast polled) and a 64-byte step packet (RankLink.Send), both compute F ms (the worker 2 ms
        // more: it starts after the packet), the worker sends its note, rank 0 receives it (StepWatch.Meet), the
        // all-reduce of N floats, then both compute U ms (the update). Each rank prints the medians of its note wait
        // (rank 0) and all-reduce. Args: N floats, F ms, U ms, then "barrier" to add a barrier after the all-reduce.
        int n = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 308_548;
        int fb = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 60;
        int upd = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 15;
        bool barrier = args.Length > 4 && args[4] == "barrier";
        var grad = new float[n];
        var header = new byte[16];
        var packet = new byte[64];
        var values = new long[k];
        var noteWait = new List<double>();
        var reduce = new List<double>();
        var period = new List<double>();
        void Compute(int ms) { var c = Stopwatch.StartNew(); while (c.ElapsedMilliseconds < ms) { } }
        var lap = Stopwatch.StartNew();
        for (int round = 0; round < 30; round++)
        {
            period.Add(lap.Elapsed.TotalMilliseconds);
            lap.Restart();
            if (r == 0) world.BroadcastPolling(header, 0, TimeSpan.FromMilliseconds(1));
            else world.BroadcastPolling(header, 0, TimeSpan.FromMilliseconds(1), spinFor: TimeSpan.FromMilliseconds(20));
            world.Broadcast(packet);
            Compute(fb + (r == 0 ? 0 : 2));
            var t = Stopwatch.StartNew();
            if (r != 0) world.SendLong(round, 0, tag: 9);
            else if (!world.TryReceiveFromAll(9, values, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(1), out _, TimeSpan.FromMilliseconds(20)))
                Fail("note never came");
            noteWait.Add(t.Elapsed.TotalMilliseconds);
            t.Restart();
            world.AllReduceSum(grad);
            if (barrier) world.Barrier();
            reduce.Add(t.Elapsed.TotalMilliseconds);
            Compute(upd);
        }
        static double Median(List<double> x) => x.Skip(3).Order().ElementAt((x.Count - 3) / 2);
        Console.WriteLine(FormattableString.Invariant($"rank {r}/{k} step ok: {n} floats, compute {fb} ms, update {upd} ms{(barrier ? ", barrier after the all-reduce" : "")}: period {Median(period):F1} ms, note {Median(noteWait):F2} ms, all-reduce {Median(reduce):F2} ms"));
        break;
    }
    default: Fail($"unknown mode {mode}"); break;
}
world.Finalize();
return 0;
