using System.Runtime.InteropServices;
using Ect.Compute.Runtime;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ect.Compute.Tests.Runtime;

/// <summary>
/// libtorch wrote "Could not initialize NNPACK! Reason: Unsupported hardware." to stderr for every no-grad 1x1
/// convolution at one thread on this CPU (issue 17, point 2). The line is written by native code to file descriptor 2,
/// so the tests capture that descriptor itself, not Console.Error.
/// </summary>
[Collection("TorchThreads")]
public class LibTorchBackendsTests
{
    [Fact]
    public void Configure_switches_NNPACK_off_and_a_no_grad_1x1_convolution_then_writes_nothing_to_native_stderr()
    {
        LibTorchBackends.Configure().Should().BeTrue("libtorch 2.10's libtorch_cpu.so exports at::Context's switches");
        LibTorchBackends.NnpackEnabled.Should().BeFalse();
        try
        {
            // With the switch on, the same convolution shows whether this CPU prints the line at all.
            LibTorchBackends.SetNnpackEnabled(true);
            var on = NativeStderr(NoGrad1x1Convolution);
            LibTorchBackends.SetNnpackEnabled(false);
            var off = NativeStderr(NoGrad1x1Convolution);

            off.Should().NotContain("NNPACK", "NNPACK is off, so ATen never asks whether it is available");
            if (!on.Contains("Could not initialize NNPACK"))
                on.Should().BeEmpty("on a CPU that NNPACK supports nothing is printed either way");
            // The capture itself works: a native write to descriptor 2 is seen.
            NativeStderr(() => Write(2, "native line\n"u8.ToArray(), 12)).Should().Be("native line\n");
        }
        finally { LibTorchBackends.SetNnpackEnabled(false); }
    }

    private static void NoGrad1x1Convolution()
    {
        torch.set_num_threads(1); // 1x1 kernel, one thread, batch < 16: oneDNN is not used, so ATen considers NNPACK
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = randn(4, 8, 8, 8);
        var w = randn(16, 8, 1, 1);
        var y = F.conv2d(x, w);
        y.isfinite().all().item<bool>().Should().BeTrue();
    }

    /// <summary>What <paramref name="action"/> writes to file descriptor 2 (native stderr).</summary>
    private static string NativeStderr(Action action)
    {
        var file = Path.GetTempFileName();
        var saved = Dup(2);
        saved.Should().BeGreaterThan(2);
        var fd = Open(file, 0x241 /* O_WRONLY | O_CREAT | O_TRUNC */, 0x180);
        fd.Should().BeGreaterThan(2);
        try
        {
            Dup2(fd, 2);
            action();
        }
        finally
        {
            Dup2(saved, 2);
            Close(fd);
            Close(saved);
        }
        var text = File.ReadAllText(file);
        File.Delete(file);
        return text;
    }

    [DllImport("libc", EntryPoint = "dup")] private static extern int Dup(int fd);
    [DllImport("libc", EntryPoint = "dup2")] private static extern int Dup2(int fd, int fd2);
    [DllImport("libc", EntryPoint = "open")] private static extern int Open(string path, int flags, int mode);
    [DllImport("libc", EntryPoint = "close")] private static extern int Close(int fd);
    [DllImport("libc", EntryPoint = "write")] private static extern nint Write(int fd, byte[] buffer, nint count);
}
