using System.Runtime.InteropServices;

namespace Ect.Compute.Runtime;

/// <summary>
/// Keeps glibc's malloc from handing tensor memory back to the kernel after every forward pass: call
/// <see cref="Apply"/> first thing in Main (next to <see cref="OpenMpWaitPolicy.Apply"/>).
/// <para>
/// Why (issue 21, the 1-thread sampling regression of commit f3a2315): libtorch's CPU allocator is glibc's malloc.
/// By default glibc (a) trims the main heap with brk as soon as more than M_TRIM_THRESHOLD (128 KiB, raised
/// dynamically) lies free at its top and (b) serves blocks above a dynamic mmap threshold with a fresh mmap each time.
/// The next pass then faults the same megabytes in again, page by page, zeroed; on this project's virtual machines a
/// page fault costs ~10 us of kernel time plus cold caches. Whether the heap top is free at the end of a pass depends
/// on what else lives there: before f3a2315 the temporary Scalars TorchSharp leaves to the GC finalizer (small
/// mallocs that stay alive until a collection) sat above the tensor buffers and kept the heap from shrinking; since
/// f3a2315 every Scalar is freed at once, the top is free, and glibc trims. Measured (`Ect.Bench sample batch=32
/// reps=3 threads=1` under strace): the heap shrank by 252 MiB before f3a2315 and by 1,095 MiB after it; minor page
/// faults per run ~300,000 vs ~600,000; 1-step sampling ~2x slower. The bits do not change: only where the
/// allocator gets its pages from.
/// </para>
/// <para>
/// What: mallopt(M_MMAP_THRESHOLD, 32 MiB) (the largest value glibc's dynamic threshold reaches: tensors up to 32 MiB
/// come from the heap, and a fixed value stops the threshold from moving) and mallopt(M_TRIM_THRESHOLD, -1) (mallopt(3):
/// trimming off; freed heap memory stays with the process for the next pass). Setting the mmap threshold alone is worse
/// than the default: glibc then stops adapting the trim threshold (trim threshold alone: every block above 128 KiB is
/// mmapped: 5.5 million page faults per run, 9x glibc's default, 1-step sampling 10x slower).
/// </para>
/// <para>
/// Until session 13 the trim threshold was 256 MiB, enough for a 1-step sample but not for a training step: the ECT
/// step of the bench network frees more than 256 MiB at its end, glibc handed it back, and the next step faulted it in
/// again: ~63,000 page faults per step (`perf stat -e page-faults`, Ect.Bench trainstep threads=1, steps 10 minus
/// steps 2, over 8 steps) against ~140 with trimming off, at the same peak RSS (1,507-1,513 MiB either way: a step
/// needs its peak again a second later). The cost is resident memory after a one-off peak (a large evaluation): a
/// process keeps the largest pass it ran in its heap, reused by the next allocations, never grown by repetition.
/// </para>
/// <para>
/// Threads other than the main one (the daemon's compute dispatcher, `ect eval`'s sampler and extractor threads)
/// allocate from their own arenas, made of 64 MiB mmapped "heaps", and glibc deletes (unmaps) such a heap as soon as
/// all of it is free, whatever the trim threshold says (malloc/arena.c heap_trim: only M_TOP_PAD holds it back). A
/// step that frees its activations frees whole heaps, and the next step faults them in again. So the policy also sets
/// M_TOP_PAD to 64 MiB, a heap's whole size, which makes heap_trim keep every heap (its check "free space + room left
/// &lt; pad" always holds); in the main arena the pad only makes each brk ask for 64 MiB more address space, which
/// is not resident until touched. Measured: the wider teacher's pretraining in the daemon (session 14, one thread,
/// batch 64, 90 s windows): without the pad 38 and 37 steps, 800,000 / 580,000 page faults, 5.5 s of system time;
/// with it 65 and 46 steps, 7,000 / 2,700 faults, 0.2 s. `ect eval` (session 17, 2,000 samples of the shipped
/// teacher, 2 threads, batch 100, 3 alternating rounds, one build with and without the pad): 1.27-1.51 million page
/// faults without, 0.64 million with; 93-101 CPU-s without, 79-87 with; wall 49.8-53.2 s without, 43.3-47.5 s with,
/// lower in every round. A page fault costs ~20 us of CPU on this project's VMs (paravirtualised guests), so the
/// faults were a seventh of that `ect eval`'s CPU. Until session 17 only training processes set the pad (session 14
/// could not see a gain in `ect eval` through its run-to-run spread); now every ect process does, in <see cref="Apply"/>.
/// </para>
/// <para>
/// A user who set GLIBC_TUNABLES with a malloc tunable, or MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_THRESHOLD_, keeps their
/// setting.
/// Linux with glibc only; elsewhere (or with another libc) nothing is changed.
/// </para>
/// </summary>
public static class NativeHeapPolicy
{
    /// <summary>Blocks below this size come from the heap (glibc's own dynamic maximum on 64-bit).</summary>
    public const int MmapThresholdBytes = 32 << 20;

    /// <summary>M_TRIM_THRESHOLD -1: glibc never trims the heap top (mallopt(3)).</summary>
    public const int TrimThresholdOff = -1;

    /// <summary>M_TOP_PAD: a thread arena's whole heap (glibc's HEAP_MAX_SIZE on 64-bit, twice the largest mmap
    /// threshold), so heap_trim never unmaps a free heap of a thread arena.</summary>
    public const int TopPadBytes = 64 << 20;

    // glibc's <malloc.h> parameter numbers.
    private const int M_TRIM_THRESHOLD = -1;
    private const int M_TOP_PAD = -2;
    private const int M_MMAP_THRESHOLD = -3;

    private static readonly object Gate = new();
    private static bool _applied;

    /// <summary>True when both thresholds were accepted by glibc in this process.</summary>
    public static bool Active { get; private set; }

    /// <summary>Why the settings were not applied (null when <see cref="Active"/>).</summary>
    public static string? SkippedBecause { get; private set; }

    /// <summary>True once <see cref="Apply"/> set the top pad in this process (thread arenas keep their freed heaps).</summary>
    public static bool ThreadHeapsKept { get; private set; }

    /// <summary>Sets the two thresholds and the top pad once per process (later calls do nothing).</summary>
    public static void Apply()
    {
        lock (Gate)
        {
            if (_applied) return;
            _applied = true;
            if (!OperatingSystem.IsLinux()) { SkippedBecause = "not Linux"; return; }
            var userSetting = UserMallocSetting();
            if (userSetting is not null) { SkippedBecause = $"the environment sets {userSetting}"; return; }
            try
            {
                bool mmap = MallOpt(M_MMAP_THRESHOLD, MmapThresholdBytes) == 1;
                bool trim = MallOpt(M_TRIM_THRESHOLD, TrimThresholdOff) == 1;
                Active = mmap && trim;
                if (!Active) { SkippedBecause = "mallopt refused the values (not glibc?)"; return; }
                ThreadHeapsKept = MallOpt(M_TOP_PAD, TopPadBytes) == 1;
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                SkippedBecause = "no mallopt in libc (" + e.GetType().Name + ")";
            }
        }
    }

    /// <summary>The name of a malloc setting the user made in the environment, or null.</summary>
    public static string? UserMallocSetting()
    {
        foreach (var name in new[] { "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_" })
            if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(name))) return name;
        var tunables = Environment.GetEnvironmentVariable("GLIBC_TUNABLES");
        if (tunables is not null && tunables.Contains("glibc.malloc.", StringComparison.Ordinal)) return "GLIBC_TUNABLES (glibc.malloc.*)";
        return null;
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int MallOpt(int param, int value);
}
