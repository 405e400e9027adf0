using System.Diagnostics;
using System.Globalization;
using Ect.Mpi;

// ect-mpi-probe MODE: collectives | idle-wait | abort. Prints "rank R/S MODE ok ..." or exits 1 with what was wrong.
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
    default: Fail($"unknown mode {mode}"); break;
}
world.Finalize();
return 0;
