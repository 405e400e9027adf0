using System.Runtime.InteropServices;
using Ect.Compute.Runtime;
using FluentAssertions;
using Xunit;

namespace Ect.Compute.Tests.Runtime;

/// <summary>
/// <see cref="NativeHeapPolicy"/> must make glibc serve tensor-sized blocks from the heap (not a fresh mmap each) and keep
/// their memory after free (not trim it), the two behaviours whose loss made 1-thread sampling ~2x slower (issue 21).
/// Read from glibc itself: the chunk header's IS_MMAPPED bit and mallinfo2's free heap bytes. glibc starts with a
/// 128 KiB mmap threshold, so without the policy an 8 MiB block in a fresh process is mmapped and its memory unmapped
/// at free.
/// </summary>
public class NativeHeapPolicyTests
{
    private const int BlockBytes = 8 << 20; // one [32,64,32,32] float32 activation of the bench network

    [Fact]
    public void After_apply_an_8_MiB_block_comes_from_the_heap_and_stays_there_after_free()
    {
        if (!OperatingSystem.IsLinux()) return; // glibc only: the policy changes nothing elsewhere
        NativeHeapPolicy.Apply();
        if (NativeHeapPolicy.UserMallocSetting() is not null)
        {
            NativeHeapPolicy.Active.Should().BeFalse("a malloc setting in the environment is kept");
            return;
        }
        NativeHeapPolicy.Active.Should().BeTrue(NativeHeapPolicy.SkippedBecause);

        var p = Marshal.AllocHGlobal(BlockBytes); // malloc on Unix
        try
        {
            var ones = new byte[BlockBytes];
            Array.Fill(ones, (byte)1);
            Marshal.Copy(ones, 0, p, BlockBytes); // fault the pages in, as a tensor kernel would
            // glibc's chunk header: the size word before the user pointer; bit 1 = IS_MMAPPED.
            var sizeWord = (ulong)Marshal.ReadInt64(p, -sizeof(long));
            (sizeWord & 2).Should().Be(0UL, "an 8 MiB block must come from the heap, not from a fresh mmap (threshold 32 MiB)");
            ((long)(sizeWord & ~7UL)).Should().BeGreaterThanOrEqualTo(BlockBytes, "the header read is the block's own");
        }
        finally
        {
            Marshal.FreeHGlobal(p);
        }
        // Kept for the next pass: at least the freed block lies free in the heap (glibc's default would trim it).
        var info = MallInfo2();
        ((long)info.fordblks).Should().BeGreaterThanOrEqualTo(BlockBytes, "free heap memory below 256 MiB is kept, not trimmed");
    }

    [Fact]
    public void A_malloc_setting_in_the_environment_is_reported_as_the_users()
    {
        // Only reads the process environment: the names glibc itself reads at start-up.
        var tunables = Environment.GetEnvironmentVariable("GLIBC_TUNABLES");
        var expectUser = new[] { "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_" }
                             .Any(n => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(n)))
                         || (tunables?.Contains("glibc.malloc.", StringComparison.Ordinal) ?? false);
        (NativeHeapPolicy.UserMallocSetting() is not null).Should().Be(expectUser);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MallInfo2Struct
    {
        public nuint arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
    }

    [DllImport("libc", EntryPoint = "mallinfo2")]
    private static extern MallInfo2Struct MallInfo2();
}
