using System.Runtime.InteropServices;
using Ect.Compute.Runtime;

namespace Ect.Compute.ResumeProbe;

/// <summary>
/// `probe heap policy|none`: in this fresh process, applies <see cref="NativeHeapPolicy"/> as every ect process does
/// (policy), or nothing (none), then
/// mallocs an 8 MiB block (one [32,64,32,32] float32 activation of the bench network), touches it, frees it, and prints
/// what glibc did; then mallocs, touches and frees a "pass" of <see cref="PassBlocks"/> such blocks (320 MiB, more
/// than a training step of the bench network frees at its end); then the same pass on a new thread, which allocates from
/// a thread arena of 64 MiB heaps, not the main heap (as the daemon's compute dispatcher and `ect eval`'s sampler do).
/// Prints "active=B skipped=REASON mmapped=B free_after=BYTES free_after_pass=BYTES thread_arena=B
/// free_after_thread_pass=BYTES". thread_arena says the thread's blocks did not come from the main heap; mmapped is the IS_MMAPPED bit of the block's chunk header; free_after and
/// free_after_pass are mallinfo2's free bytes in all arenas after each free (a trimmed or unmapped block is not counted).
/// NativeHeapPolicyTests reads this line.
/// </summary>
public static class HeapProbe
{
    private const int BlockBytes = 8 << 20;
    public const int PassBlocks = 40;

    public static int Run(string mode)
    {
        if (mode is not ("policy" or "none"))
        {
            Console.Error.WriteLine($"probe heap: mode '{mode}' is not 'policy' or 'none'.");
            return 2;
        }
        if (mode != "none") NativeHeapPolicy.Apply();
        var p = Marshal.AllocHGlobal(BlockBytes); // malloc on Unix
        bool mmapped;
        try
        {
            var ones = new byte[BlockBytes];
            Array.Fill(ones, (byte)1);
            Marshal.Copy(ones, 0, p, BlockBytes); // fault the pages in, as a tensor kernel would
            // glibc's chunk header: the size word before the user pointer; bit 1 = IS_MMAPPED.
            var sizeWord = (ulong)Marshal.ReadInt64(p, -sizeof(long));
            if ((long)(sizeWord & ~7UL) < BlockBytes)
            {
                Console.Error.WriteLine($"probe heap: the chunk header before the block reads size {sizeWord & ~7UL}, less than {BlockBytes}: not glibc?");
                return 3;
            }
            mmapped = (sizeWord & 2) != 0;
        }
        finally
        {
            Marshal.FreeHGlobal(p);
        }
        var freeAfter = (long)MallInfo2().fordblks;

        var pass = new IntPtr[PassBlocks];
        var page = new byte[4096];
        for (int i = 0; i < pass.Length; i++)
        {
            pass[i] = Marshal.AllocHGlobal(BlockBytes);
            for (int off = 0; off < BlockBytes; off += page.Length) Marshal.Copy(page, 0, pass[i] + off, page.Length);
        }
        foreach (var block in pass) Marshal.FreeHGlobal(block);
        var freeAfterPass = (long)MallInfo2().fordblks;

        // The same pass on a thread of its own. glibc's chunk header bit 2 (NON_MAIN_ARENA) says where a block came from.
        bool threadArena = false;
        var thread = new Thread(() =>
        {
            for (int i = 0; i < pass.Length; i++)
            {
                pass[i] = Marshal.AllocHGlobal(BlockBytes);
                for (int off = 0; off < BlockBytes; off += page.Length) Marshal.Copy(page, 0, pass[i] + off, page.Length);
            }
            threadArena = ((ulong)Marshal.ReadInt64(pass[0], -sizeof(long)) & 4) != 0;
            foreach (var block in pass) Marshal.FreeHGlobal(block);
        });
        thread.Start();
        thread.Join();
        var freeAfterThreadPass = (long)MallInfo2().fordblks - freeAfterPass;
        Console.WriteLine($"active={NativeHeapPolicy.Active} skipped={NativeHeapPolicy.SkippedBecause ?? "-"} mmapped={mmapped} " +
                          $"free_after={freeAfter} free_after_pass={freeAfterPass} thread_arena={threadArena} free_after_thread_pass={freeAfterThreadPass} " +
                          $"thread_heaps_kept={NativeHeapPolicy.ThreadHeapsKept}");
        return 0;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MallInfo2Struct
    {
        public nuint arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
    }

    [DllImport("libc", EntryPoint = "mallinfo2")]
    private static extern MallInfo2Struct MallInfo2();
}
